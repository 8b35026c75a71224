/*
 * Unit tests of the manifest: parsing config.json as users write it, each
 * error message naming its field, the check against a loaded graph and the
 * manifest made from a graph.  The graphs are the fixtures that
 * tests/data/make_repo_fixtures.py writes; their shapes are stated there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "bms/repo.h"

#define TINY_MLP "tests/data/tiny_mlp.onnx"
#define TINY_TWO "tests/data/tiny_two_inputs.onnx"
#define TINY_RANK1 "tests/data/tiny_rank1.onnx"

static const char example_json[] =
    "{\"name\": \"digit_recognizer\", \"version\": \"1.0\",\n"
    " \"description\": \"Digit recognizer model trained on MNIST "
    "dataset.\",\n"
    " \"license\": \"\",\n"
    " \"inputs\":  [{\"type\": \"float\", \"name\": \"image\", "
    "\"size\": [28, 28],\n"
    "              \"order\": \"hwc\"}],\n"
    " \"outputs\": [{\"type\": \"int\", \"name\": \"label\",\n"
    "              \"classes\": [\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\","
    "\"7\",\"8\",\"9\"]}],\n"
    " \"dependencies\": [{\"library\": \"numpy>=1.17.4,<1.19.0\", "
    "\"package\": \"\",\n"
    "                   \"script\": \"\"}]}\n";


static struct bms_manifest *parse_ok(const char *json)
{
    struct bms_manifest *m = NULL;
    struct bms_diag diag = {""};
    enum bms_status rc = bms_manifest_parse(json, strlen(json), &m, &diag);

    if (rc != BMS_OK) {
        print_error("parse failed: %s\n", diag.msg);
    }
    assert_int_equal(rc, BMS_OK);
    assert_non_null(m);
    return m;
}


/* Parses json expecting BMS_ERR_INVALID and returns the message. */
static const char *parse_error(const char *json, struct bms_diag *diag)
{
    struct bms_manifest *m = NULL;
    enum bms_status rc;

    diag->msg[0] = '\0';
    rc = bms_manifest_parse(json, strlen(json), &m, diag);
    assert_int_equal(rc, BMS_ERR_INVALID);
    assert_null(m);
    return diag->msg;
}


static struct bms_model *load_fixture(const char *path)
{
    struct bms_model *model = NULL;
    struct bms_diag diag = {""};
    enum bms_status rc = bms_model_load_file(path, &model, &diag);

    if (rc != BMS_OK) {
        print_error("%s: %s\n", path, diag.msg);
    }
    assert_int_equal(rc, BMS_OK);
    return model;
}


static void manifest_parses_example(void **state)
{
    struct bms_manifest *m = parse_ok(example_json);

    (void)state;
    assert_string_equal(m->name, "digit_recognizer");
    assert_string_equal(m->version, "1.0");
    assert_string_equal(m->description,
                        "Digit recognizer model trained on MNIST dataset.");
    assert_string_equal(m->license, "");
    assert_int_equal(m->n_inputs, 1);
    assert_string_equal(m->inputs[0].name, "image");
    assert_int_equal(m->inputs[0].dtype, BMS_DTYPE_F32);
    assert_int_equal(m->inputs[0].n_dims, 2);
    assert_int_equal(m->inputs[0].dims[0], 28);
    assert_int_equal(m->inputs[0].dims[1], 28);
    assert_string_equal(m->inputs[0].order, "hwc");
    assert_null(m->inputs[0].classes);
    assert_int_equal(m->n_outputs, 1);
    assert_string_equal(m->outputs[0].name, "label");
    assert_int_equal(m->outputs[0].dtype, BMS_DTYPE_I64);
    assert_int_equal(m->outputs[0].n_dims, -1);
    assert_int_equal(m->outputs[0].n_classes, 10);
    assert_string_equal(m->outputs[0].classes[0], "0");
    assert_string_equal(m->outputs[0].classes[9], "9");
    assert_int_equal(m->n_deps, 1);
    assert_string_equal(m->deps[0].library, "numpy>=1.17.4,<1.19.0");
    assert_string_equal(m->deps[0].package, "");
    assert_string_equal(m->deps[0].script, "");
    assert_string_equal(m->json, example_json);
    bms_manifest_destroy(m);
}


static void manifest_accepts_every_type_name(void **state)
{
    static const struct {
        const char *name;
        enum bms_dtype dtype;
    } cases[] = {
        {"float", BMS_DTYPE_F32}, {"double", BMS_DTYPE_F64},
        {"int", BMS_DTYPE_I64},   {"int64", BMS_DTYPE_I64},
        {"int32", BMS_DTYPE_I32}, {"uint8", BMS_DTYPE_U8},
        {"bool", BMS_DTYPE_BOOL}, {"FP32", BMS_DTYPE_F32},
        {"FP64", BMS_DTYPE_F64},  {"INT64", BMS_DTYPE_I64},
        {"INT32", BMS_DTYPE_I32}, {"UINT8", BMS_DTYPE_U8},
        {"BOOL", BMS_DTYPE_BOOL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[128];
        struct bms_manifest *m;

        snprintf(json, sizeof(json), "{\"inputs\": [{\"name\": \"x\", "
                 "\"type\": \"%s\"}]}", cases[i].name);
        m = parse_ok(json);
        assert_int_equal(m->inputs[0].dtype, cases[i].dtype);
        bms_manifest_destroy(m);
    }
}


static void manifest_absent_fields_are_empty(void **state)
{
    struct bms_manifest *m = parse_ok("{\"inputs\": [{\"name\": \"x\", "
                                      "\"type\": \"float\", \"order\": "
                                      "\"\"}], \"license\": null}");

    (void)state;
    assert_string_equal(m->name, "");
    assert_string_equal(m->version, "");
    assert_string_equal(m->description, "");
    assert_string_equal(m->license, "");
    assert_null(m->inputs[0].order);
    assert_int_equal(m->inputs[0].n_dims, -1);
    assert_int_equal(m->n_outputs, 0);
    assert_int_equal(m->n_deps, 0);
    bms_manifest_destroy(m);
}


static void manifest_keeps_numeric_version_as_written(void **state)
{
    struct bms_manifest *m = parse_ok("{\"version\": 1.0}");

    (void)state;
    assert_string_equal(m->version, "1.0");
    bms_manifest_destroy(m);
}


static void manifest_errors_name_the_field(void **state)
{
    static const struct {
        const char *json;
        const char *msg;
    } cases[] = {
        {"{\"name\": 5}", "name: expected a string"},
        {"{\"description\": []}", "description: expected a string"},
        {"{\"inputs\": {}}", "inputs: expected an array"},
        {"{\"inputs\": [{\"name\": \"a\", \"type\": \"float\"}, 3]}",
         "inputs[1]: expected an object"},
        {"{\"inputs\": [{\"type\": \"float\"}]}",
         "inputs[0].name: expected a non-empty string"},
        {"{\"inputs\": [{\"name\": \"x\"}]}",
         "inputs[0].type: expected a string such as \"float\" or \"int\""},
        {"{\"inputs\": [{\"name\": \"x\", \"type\": \"float\", "
         "\"size\": [28, 0]}]}",
         "inputs[0].size[1]: expected a positive integer"},
        {"{\"inputs\": [{\"name\": \"x\", \"type\": \"float\", "
         "\"size\": [28, 2.5]}]}",
         "inputs[0].size[1]: expected a positive integer"},
        {"{\"inputs\": [{\"name\": \"x\", \"type\": \"float\", "
         "\"size\": [-3]}]}",
         "inputs[0].size[0]: expected a positive integer"},
        {"{\"inputs\": [{\"name\": \"x\", \"type\": \"float\", "
         "\"size\": \"28\"}]}",
         "inputs[0].size: expected an array of positive integers"},
        {"{\"inputs\": [{\"name\": \"x\", \"type\": \"float\", "
         "\"order\": 3}]}",
         "inputs[0].order: expected a string"},
        {"{\"inputs\": [{\"name\": \"x\", \"type\": \"float\"}, "
         "{\"name\": \"x\", \"type\": \"int\"}]}",
         "inputs[1].name: 'x' is declared twice"},
        {"{\"outputs\": [{\"name\": \"y\", \"type\": \"int\", "
         "\"classes\": \"abc\"}]}",
         "outputs[0].classes: expected an array of strings"},
        {"{\"outputs\": [{\"name\": \"y\", \"type\": \"int\", "
         "\"classes\": []}]}",
         "outputs[0].classes: expected an array of strings"},
        {"{\"outputs\": [{\"name\": \"y\", \"type\": \"int\", "
         "\"classes\": [\"a\", 1]}]}",
         "outputs[0].classes[1]: expected a string"},
        {"{\"dependencies\": {}}", "dependencies: expected an array"},
        {"{\"dependencies\": [\"numpy\"]}",
         "dependencies[0]: expected an object"},
        {"{\"dependencies\": [{\"library\": 3}]}",
         "dependencies[0].library: expected a string"},
        {"[1, 2]", "config.json: expected a JSON object"},
    };
    struct bms_diag diag;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_string_equal(parse_error(cases[i].json, &diag),
                            cases[i].msg);
    }
}


static void manifest_rejects_unknown_order(void **state)
{
    struct bms_diag diag;
    const char *msg = parse_error("{\"inputs\": [{\"name\": \"x\", \"type\": "
                                  "\"float\", \"order\": \"nhwc\"}]}", &diag);

    (void)state;
    assert_true(strncmp(msg, "inputs[0].order: unknown order 'nhwc'", 37)
                == 0);
}


static void manifest_rejects_unknown_type(void **state)
{
    struct bms_diag diag;
    const char *msg = parse_error("{\"outputs\": [{\"name\": \"y\", \"type\": "
                                  "\"complex\"}]}", &diag);

    (void)state;
    assert_true(strncmp(msg, "outputs[0].type: unknown type 'complex'", 39)
                == 0);
}


static void manifest_rejects_too_many_dims(void **state)
{
    struct bms_diag diag;
    const char *msg = parse_error("{\"inputs\": [{\"name\": \"x\", \"type\": "
                                  "\"float\", \"size\": [1, 1, 1, 1, 1, 1, "
                                  "1, 1]}]}", &diag);

    (void)state;
    assert_true(strncmp(msg, "inputs[0].size: 8 dimensions, at most 7", 39)
                == 0);
}


static void manifest_malformed_json_is_one_line(void **state)
{
    struct bms_diag diag;
    const char *msg = parse_error("{\"name\": \"x\",,\n \"license\": 1}",
                                  &diag);

    (void)state;
    assert_true(strncmp(msg, "config.json: ", 13) == 0);
    assert_true(strlen(msg) > 13);
    assert_null(strchr(msg, '\n'));
    msg = parse_error("", &diag);
    assert_true(strncmp(msg, "config.json: ", 13) == 0);
}


static void manifest_rejects_nul_byte(void **state)
{
    struct bms_manifest *m = NULL;
    struct bms_diag diag = {""};
    static const char json[] = "{\"name\": \"a\0b\"}";

    (void)state;
    assert_int_equal(bms_manifest_parse(json, sizeof(json) - 1, &m, &diag),
                     BMS_ERR_INVALID);
    assert_string_equal(diag.msg, "config.json: contains a NUL byte");
}


/* tiny_mlp: image float [N, 4, 4] -> logits float [N, 3]. */
static const char tiny_classifier_json[] =
    "{\"inputs\": [{\"name\": \"image\", \"type\": \"float\", "
    "\"size\": [4, 4], \"order\": \"hw\"}],"
    " \"outputs\": [{\"name\": \"logits\", \"type\": \"int\", "
    "\"classes\": [\"a\", \"b\", \"c\"]}]}";


/* Parses json and checks it against model, returning the check's status
 * and message. */
static enum bms_status check_json(const char *json,
                                  const struct bms_model *model,
                                  struct bms_diag *diag)
{
    struct bms_manifest *m = parse_ok(json);
    enum bms_status rc;

    diag->msg[0] = '\0';
    rc = bms_manifest_check(m, model, diag);
    bms_manifest_destroy(m);
    return rc;
}


static void check_accepts_matching_classifier(void **state)
{
    struct bms_model *model = load_fixture(TINY_MLP);
    struct bms_diag diag;

    (void)state;
    assert_int_equal(check_json(tiny_classifier_json, model, &diag), BMS_OK);
    bms_model_destroy(model);
}


static void check_rejects_mismatches(void **state)
{
    static const struct {
        const char *json;
        const char *msg;
    } cases[] = {
        {"{\"inputs\": [{\"name\": \"img\", \"type\": \"float\"}]}",
         "inputs[0].name: 'img' is not a graph input (graph inputs: image)"},
        {"{\"inputs\": [{\"name\": \"image\", \"type\": \"int\"}]}",
         "inputs[0].type: int, but graph input 'image' is float"},
        {"{\"inputs\": [{\"name\": \"image\", \"type\": \"float\", "
         "\"size\": [16]}]}",
         "inputs[0].size: needs graph rank 2 (batch + 1), but 'image' has "
         "rank 3"},
        {"{\"inputs\": [{\"name\": \"image\", \"type\": \"float\", "
         "\"size\": [4, 5]}]}",
         "inputs[0].size[1]: 5, but graph value 'image' has 4 there"},
        {"{\"inputs\": [{\"name\": \"image\", \"type\": \"float\"}],"
         " \"outputs\": [{\"name\": \"logits\", \"type\": \"int\", "
         "\"classes\": [\"a\", \"b\"]}]}",
         "outputs[0].classes: 2 classes, but graph output 'logits' has 3 "
         "scores per item"},
        {"{\"inputs\": [{\"name\": \"image\", \"type\": \"float\"}],"
         " \"outputs\": [{\"name\": \"logits\", \"type\": \"int\"}]}",
         "outputs[0].type: int, but graph output 'logits' is float"},
        {"{\"inputs\": [{\"name\": \"image\", \"type\": \"float\"}],"
         " \"outputs\": [{\"name\": \"label\", \"type\": \"int\"}]}",
         "outputs[0].name: 'label' is not a graph output (graph outputs: "
         "logits)"},
        {"{}", "inputs: graph input 'image' is not declared"},
    };
    struct bms_model *model = load_fixture(TINY_MLP);
    struct bms_diag diag;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(check_json(cases[i].json, model, &diag),
                         BMS_ERR_INVALID);
        assert_string_equal(diag.msg, cases[i].msg);
    }
    bms_model_destroy(model);
}


static void check_names_undeclared_graph_input(void **state)
{
    struct bms_model *model = load_fixture(TINY_TWO);
    struct bms_diag diag;

    (void)state;
    assert_int_equal(check_json("{\"inputs\": [{\"name\": \"image\", "
                                "\"type\": \"float\", \"size\": [4]}]}",
                                model, &diag),
                     BMS_ERR_INVALID);
    assert_string_equal(diag.msg, "inputs: graph input 'mask' is not "
                        "declared");
    assert_int_equal(check_json("{\"inputs\": [{\"name\": \"mask\", "
                                "\"type\": \"FP32\"}, {\"name\": \"image\", "
                                "\"type\": \"float\", \"size\": [4]}]}",
                                model, &diag),
                     BMS_OK);
    bms_model_destroy(model);
}


/* tiny_rank1 gives one float per item: no class dimension to argmax. */
static void check_rejects_classifier_without_class_dim(void **state)
{
    struct bms_model *model = load_fixture(TINY_RANK1);
    struct bms_diag diag;

    (void)state;
    assert_int_equal(check_json("{\"inputs\": [{\"name\": \"x\", "
                                "\"type\": \"float\", \"size\": [1]}], "
                                "\"outputs\": [{\"name\": \"score\", "
                                "\"type\": \"int\", \"classes\": "
                                "[\"a\"]}]}", model, &diag),
                     BMS_ERR_INVALID);
    assert_string_equal(diag.msg, "outputs[0].classes: graph output 'score' "
                        "has rank 1, but a classifier needs scores [batch, "
                        "..., classes]");
    bms_model_destroy(model);
}


static void from_model_describes_graph(void **state)
{
    struct bms_model *model = load_fixture(TINY_MLP);
    struct bms_manifest *m = NULL;
    struct bms_manifest *again;
    struct bms_diag diag = {""};

    (void)state;
    assert_int_equal(bms_manifest_from_model(model, "tiny", &m, &diag),
                     BMS_OK);
    assert_string_equal(m->name, "tiny");
    assert_int_equal(m->n_inputs, 1);
    assert_string_equal(m->inputs[0].name, "image");
    assert_int_equal(m->inputs[0].dtype, BMS_DTYPE_F32);
    assert_int_equal(m->inputs[0].n_dims, 2);
    assert_int_equal(m->inputs[0].dims[0], 4);
    assert_int_equal(m->inputs[0].dims[1], 4);
    assert_int_equal(m->n_outputs, 1);
    assert_string_equal(m->outputs[0].name, "logits");
    assert_int_equal(m->outputs[0].n_dims, 1);
    assert_int_equal(m->outputs[0].dims[0], 3);
    assert_null(m->outputs[0].classes);
    assert_string_equal(m->json, "{\"name\":\"tiny\",\"inputs\":[{\"name\":"
                        "\"image\",\"type\":\"float\",\"size\":[4,4]}],"
                        "\"outputs\":[{\"name\":\"logits\",\"type\":"
                        "\"float\",\"size\":[3]}]}");

    /* The text it makes reads back as the same manifest, and fits. */
    again = parse_ok(m->json);
    assert_int_equal(again->inputs[0].n_dims, 2);
    assert_int_equal(bms_manifest_check(again, model, &diag), BMS_OK);
    bms_manifest_destroy(again);
    bms_manifest_destroy(m);
    bms_model_destroy(model);
}


/* The committed example models, when present, match their manifests. */
static void check_accepts_committed_models(void **state)
{
    static const char *const names[] = {"fashion_mlp", "fashion_cnn"};

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[256];
        char *text;
        long size;
        FILE *f;
        struct bms_model *model;
        struct bms_diag diag = {""};

        snprintf(path, sizeof(path), "models/%s/config.json", names[i]);
        f = fopen(path, "rb");
        if (f == NULL) {
            continue;
        }
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fseek(f, 0, SEEK_SET);
        text = calloc(1, (size_t)size + 1);
        assert_non_null(text);
        assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
        fclose(f);
        snprintf(path, sizeof(path), "models/%s/1/model.onnx", names[i]);
        model = load_fixture(path);
        assert_int_equal(check_json(text, model, &diag), BMS_OK);
        bms_model_destroy(model);
        free(text);
    }
}


int bms_test_manifest(int *n_tests)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(manifest_parses_example),
        cmocka_unit_test(manifest_accepts_every_type_name),
        cmocka_unit_test(manifest_absent_fields_are_empty),
        cmocka_unit_test(manifest_keeps_numeric_version_as_written),
        cmocka_unit_test(manifest_errors_name_the_field),
        cmocka_unit_test(manifest_rejects_unknown_order),
        cmocka_unit_test(manifest_rejects_unknown_type),
        cmocka_unit_test(manifest_rejects_too_many_dims),
        cmocka_unit_test(manifest_malformed_json_is_one_line),
        cmocka_unit_test(manifest_rejects_nul_byte),
        cmocka_unit_test(check_accepts_matching_classifier),
        cmocka_unit_test(check_rejects_mismatches),
        cmocka_unit_test(check_names_undeclared_graph_input),
        cmocka_unit_test(check_rejects_classifier_without_class_dim),
        cmocka_unit_test(from_model_describes_graph),
        cmocka_unit_test(check_accepts_committed_models),
    };

    return BMS_RUN_GROUP(tests, n_tests);
}
