/*
 * Run-time model settings laid over config.json: a JSON merge of two
 * objects, written again as text so that bms_manifest_parse checks the
 * result exactly as it checks a config.json file.
 *
 * The merge follows the JSON merge patch rules: an object member of the
 * patch merges into the base's member of that name, null removes the
 * member, any other value replaces it.  Both documents are parsed with
 * yajl's tree API after a scan that bounds their nesting, since yajl
 * builds and frees trees recursively.
 */
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "bms/repo.h"

#define NESTING_MAX 32               /* objects and arrays inside another */


/* The deepest nesting of [ and { outside strings in text (len bytes). */
static int nesting(const char *text, size_t len)
{
    int depth = 0;
    int deepest = 0;
    int in_string = 0;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];

        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = 0;
            }
            continue;
        }
        if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            depth++;
            deepest = depth > deepest ? depth : deepest;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return deepest;
}


/* One line of yajl's message (it spans several) into out. */
static void first_line(char *s)
{
    for (char *p = s; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = '\0';
            break;
        }
    }
}


/* Parse len bytes of text as a JSON object into *out (yajl_tree_free);
 * messages start with what. */
static enum bms_status parse_doc(const char *text, size_t len,
                                 const char *what, yajl_val *out,
                                 struct bms_diag *diag)
{
    char err[256] = "";
    yajl_val tree;
    char *copy;

    if (memchr(text, '\0', len) != NULL) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: contains a NUL "
                            "byte", what);
    }
    if (nesting(text, len) > NESTING_MAX) {
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: nested deeper than "
                            "%d levels", what, NESTING_MAX);
    }
    copy = malloc(len + 1);
    if (copy == NULL) {
        return bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    tree = yajl_tree_parse(copy, err, sizeof(err));
    free(copy);
    if (tree == NULL || !YAJL_IS_OBJECT(tree)) {
        yajl_tree_free(tree);
        first_line(err);
        return bms_diag_set(diag, BMS_ERR_INVALID, "%s: %s", what,
                            tree != NULL ? "expected a JSON object"
                            : err[0] != '\0' ? err : "parse error");
    }
    *out = tree;
    return BMS_OK;
}


static int gen_key(yajl_gen g, const char *key)
{
    return yajl_gen_string(g, (const unsigned char *)key, strlen(key))
           != yajl_gen_status_ok;
}


/* Write v as it is; 0 on success. */
static int gen_value(yajl_gen g, yajl_val v)
{
    int bad = 0;

    switch (v->type) {
    case yajl_t_string:
        return gen_key(g, v->u.string);
    case yajl_t_number:
        return yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r))
               != yajl_gen_status_ok;
    case yajl_t_true:
    case yajl_t_false:
        return yajl_gen_bool(g, v->type == yajl_t_true)
               != yajl_gen_status_ok;
    case yajl_t_null:
        return yajl_gen_null(g) != yajl_gen_status_ok;
    case yajl_t_array:
        bad = yajl_gen_array_open(g) != yajl_gen_status_ok;
        for (size_t i = 0; i < v->u.array.len && !bad; i++) {
            bad = gen_value(g, v->u.array.values[i]);
        }
        return bad || yajl_gen_array_close(g) != yajl_gen_status_ok;
    case yajl_t_object:
        bad = yajl_gen_map_open(g) != yajl_gen_status_ok;
        for (size_t i = 0; i < v->u.object.len && !bad; i++) {
            bad = gen_key(g, v->u.object.keys[i])
                  || gen_value(g, v->u.object.values[i]);
        }
        return bad || yajl_gen_map_close(g) != yajl_gen_status_ok;
    case yajl_t_any:
        break;
    }
    return 1;
}


/* The member key of object obj, or NULL. */
static yajl_val member(yajl_val obj, const char *key)
{
    if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
        return NULL;
    }
    for (size_t i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], key) == 0) {
            return obj->u.object.values[i];
        }
    }
    return NULL;
}


/*
 * Write patch laid over base (NULL: nothing there).  At the top level
 * (drop not NULL) the member named drop is left out.  0 on success.
 */
static int gen_merged(yajl_gen g, yajl_val base, yajl_val patch,
                      const char *drop)
{
    int bad;

    if (!YAJL_IS_OBJECT(patch)) {
        return gen_value(g, patch);
    }
    if (base != NULL && !YAJL_IS_OBJECT(base)) {
        base = NULL;
    }
    bad = yajl_gen_map_open(g) != yajl_gen_status_ok;

    /* The base's members in their order, each merged with the patch's. */
    for (size_t i = 0; base != NULL && i < base->u.object.len && !bad; i++) {
        const char *key = base->u.object.keys[i];
        yajl_val over = member(patch, key);

        if ((drop != NULL && strcmp(key, drop) == 0) ||
            (over != NULL && YAJL_IS_NULL(over))) {
            continue;
        }
        bad = gen_key(g, key)
              || (over != NULL
                      ? gen_merged(g, base->u.object.values[i], over, NULL)
                      : gen_value(g, base->u.object.values[i]));
    }

    /* Then what only the patch has. */
    for (size_t i = 0; i < patch->u.object.len && !bad; i++) {
        const char *key = patch->u.object.keys[i];
        yajl_val v = patch->u.object.values[i];

        if ((drop != NULL && strcmp(key, drop) == 0) || YAJL_IS_NULL(v) ||
            member(base, key) != NULL) {
            continue;
        }
        bad = gen_key(g, key) || gen_merged(g, NULL, v, NULL);
    }
    return bad || yajl_gen_map_close(g) != yajl_gen_status_ok;
}


enum bms_status bms_settings_merge(const char *base, size_t base_len,
                                   const char *patch, size_t patch_len,
                                   const char *drop, struct bms_buf *out,
                                   struct bms_diag *diag)
{
    yajl_val base_tree = NULL;
    yajl_val patch_tree = NULL;
    yajl_gen g = NULL;
    const unsigned char *text;
    size_t len;
    enum bms_status rc;

    rc = parse_doc(base, base_len, "config.json", &base_tree, diag);
    if (rc == BMS_OK) {
        rc = parse_doc(patch, patch_len, "body", &patch_tree, diag);
    }
    if (rc != BMS_OK) {
        goto out;
    }
    g = yajl_gen_alloc(NULL);
    if (g == NULL || gen_merged(g, base_tree, patch_tree, drop) != 0 ||
        yajl_gen_get_buf(g, &text, &len) != yajl_gen_status_ok) {
        rc = bms_diag_set(diag, BMS_ERR_NOMEM, "out of memory");
        goto out;
    }
    bms_buf_reset(out);
    rc = bms_buf_append(out, text, len);
    if (rc != BMS_OK) {
        bms_diag_set(diag, rc, "out of memory");
    }

out:
    if (g != NULL) {
        yajl_gen_free(g);
    }
    yajl_tree_free(patch_tree);
    yajl_tree_free(base_tree);
    return rc;
}
