/*
 * json.c - jansson setters with one failure policy (see md_base.h): a value
 * jansson could not build is left out, a misuse aborts, out of memory aborts.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "md_base.h"

bool md_json_set(json_t *o, const char *key, json_t *v)
{
    if (v == NULL)
        return false; /* jansson refused the value: left out */
    if (json_object_set_new(o, key, v) != 0) {
        fprintf(stderr, "marketd: json_object_set_new(\"%s\") refused: a bug\n", key);
        abort();
    }
    return true;
}

bool md_json_append(json_t *a, json_t *v)
{
    if (v == NULL)
        return false;
    if (json_array_append_new(a, v) != 0) {
        fprintf(stderr, "marketd: json_array_append_new refused: a bug\n");
        abort();
    }
    return true;
}
