# bms build. Plain GNU make: the project is a handful of C folders and one
# generated protobuf file, so a configure step would add more than it saves.
#
#   make            build/bms, build/libbms.a, the test programs
#   make test       the whole test suite (tests/run.sh)
#   make SAN=1 BUILD=build/san   the same with ASan and UBSan

BUILD   ?= build
CC      ?= gcc
PROTO   ?= /usr/include/onnx/onnx.proto
OPT     ?= -O2
PKGS    := libmicrohttpd yajl libprotobuf-c sqlite3 zlib gnutls libarchive

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wundef -Wvla
CFLAGS  += -std=c11 $(OPT) -g $(WARN) -D_DEFAULT_SOURCE \
           -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc -I$(BUILD)/gen \
           $(shell pkg-config --cflags $(PKGS)) -MMD -MP -pthread
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -ldnnl -lgomp -lm -pthread

ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer \
           -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(WERROR),1)
CFLAGS  += -Werror
endif
# A test build with the faulty operator BmsTestFault (tests/e2e/
# test_isolation.py): make TEST_FAULTS=1 BUILD=build/faults
ifeq ($(TEST_FAULTS),1)
CFLAGS  += -DBMS_TEST_FAULTS
endif

LIB_SRC := $(wildcard src/base/*.c src/engine/*.c src/engine/ops/*.c \
                      src/repo/*.c src/sched/*.c src/worker/*.c \
                      src/store/*.c \
                      src/server/*.c)
CLI_SRC := $(wildcard src/cli/*.c)
UNIT_SRC := $(wildcard tests/unit/*.c)
CONF_SRC := $(wildcard tests/conformance/*.c)

GEN_C   := $(BUILD)/gen/onnx.pb-c.c
GEN_H   := $(BUILD)/gen/onnx.pb-c.h
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/onnx.pb-c.o
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/obj/%.o)
CONF_OBJ := $(CONF_SRC:%.c=$(BUILD)/obj/%.o)

all: $(BUILD)/bms $(BUILD)/unit-tests $(BUILD)/conformance

$(GEN_C) $(GEN_H) &: $(PROTO)
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -I$(dir $(PROTO)) $(PROTO)

$(BUILD)/obj/gen/onnx.pb-c.o: $(GEN_C)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out $(WARN),$(CFLAGS)) -w -c $< -o $@

# docs/openapi.json and web/docs.html as byte arrays in a generated header
# that src/server/docs.c includes, so the binary serves the API document
# and its page without reading files (nothing generated is committed).
EMBED_H := $(BUILD)/gen/docs_embed.h
$(EMBED_H): docs/openapi.json web/docs.html
	@mkdir -p $(BUILD)/gen
	{ for f in $^; do n=$$(echo $$f | tr -c 'a-z0-9\n' _); \
	  echo "static const unsigned char embed_$$n[] = {"; \
	  od -An -v -tx1 $$f | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo "};"; done; } > $@.tmp && mv $@.tmp $@
$(BUILD)/obj/src/server/docs.o $(BUILD)/fuzz/obj/src/server/docs.o: $(EMBED_H)

# The direct convolution shares a batch out with OpenMP pragmas.
$(BUILD)/obj/src/engine/ops/conv.o: CFLAGS += -fopenmp
$(BUILD)/obj/src/engine/ops/blas.o: CFLAGS += -fopenmp

$(BUILD)/obj/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libbms.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/bms: $(CLI_OBJ) $(BUILD)/libbms.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit-tests: $(UNIT_OBJ) $(BUILD)/libbms.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/conformance: $(CONF_OBJ) $(BUILD)/libbms.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The test script builds what it needs itself, with -Werror.
test:
	tests/run.sh

clean:
	rm -rf $(BUILD)

# The libFuzzer target for the ONNX loader (tests/fuzz/README.md): clang,
# every library source instrumented, objects apart from the gcc build.
FUZZ_CC  ?= clang
FUZZ_DIR := $(BUILD)/fuzz
FUZZ_SAN := -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -O1 -g $(FUZZ_SAN) -D_DEFAULT_SOURCE \
           -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc -I$(BUILD)/gen \
           $(shell pkg-config --cflags $(PKGS)) -MMD -MP -pthread
FUZZ_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o) \
            $(FUZZ_DIR)/obj/gen/onnx.pb-c.o \
            $(FUZZ_DIR)/obj/tests/fuzz/fuzz_onnx.o

# The second target, for the v2 infer request path: the same objects
# with fuzz_v2.o in place of fuzz_onnx.o.
FUZZ_V2_OBJ := $(filter-out %/fuzz_onnx.o,$(FUZZ_OBJ)) \
               $(FUZZ_DIR)/obj/tests/fuzz/fuzz_v2.o

fuzz: $(FUZZ_DIR)/fuzz-onnx $(FUZZ_DIR)/fuzz-v2

$(FUZZ_DIR)/obj/gen/onnx.pb-c.o: $(GEN_C)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -w -c $< -o $@

$(FUZZ_DIR)/obj/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(WARN) -c $< -o $@

$(FUZZ_DIR)/fuzz-onnx: $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(LDLIBS)

$(FUZZ_DIR)/fuzz-v2: $(FUZZ_V2_OBJ)
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $^ $(LDLIBS)

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)

# The kernel-library benchmark (bench/kernels.sh, bench/kernels.md):
# oneDNN against OpenBLAS on bms's products and convolutions.  Not part of
# all or test; it needs libopenblas-dev.
BENCH_KERNELS_CFLAGS := -std=c11 $(OPT) -g $(WARN) -D_DEFAULT_SOURCE \
           -D_POSIX_C_SOURCE=200809L \
           $(shell pkg-config --cflags openblas 2>/dev/null)
BENCH_KERNELS_LIBS := $(shell pkg-config --libs openblas 2>/dev/null) \
           -lopenblas -ldnnl -lgomp -lm

bench-kernels: $(BUILD)/bench-kernels

$(BUILD)/bench-kernels: bench/kernels.c
	@mkdir -p $(BUILD)
	$(CC) $(BENCH_KERNELS_CFLAGS) -o $@ $< $(BENCH_KERNELS_LIBS)

# The request parser benchmark (bench/parse.c): the fast path for "data"
# against yajl's events on Fashion-MNIST requests.
bench-parse: $(BUILD)/bench-parse

$(BUILD)/bench-parse: $(BUILD)/obj/bench/parse.o $(BUILD)/libbms.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

.PHONY: all test clean fuzz bench-kernels bench-parse
-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
