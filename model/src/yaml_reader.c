/*
 * yaml_reader.c — libyaml events to model_node trees, one document at a time.
 *
 * DESIGN: the event API (not yaml_parser_load) so that a stream of 100,000
 * documents never holds more than one document in memory, and so scalars
 * are copied once, straight into the caller's arena. Anchors map to the
 * subtree they name; an alias shares it (the tree becomes a DAG, which the
 * validators only read). libyaml's marks are 0-based; ours are 1-based.
 */
#include <string.h>

#include <yaml.h>

#include "kt/map.h"
#include "model/node.h"
#include "node_int.h"

typedef struct yaml_reader {
    model_builder b;
    kt_map anchors; /* anchor name (arena) -> model_node*, per document */
    const char *file;
} yaml_reader;

static model_mark mark_of(const yaml_reader *r, yaml_mark_t m)
{
    model_mark mk = { r->file, (uint32_t)m.line + 1, (uint32_t)m.column + 1 };
    return mk;
}

static void remember_anchor(yaml_reader *r, const yaml_char_t *anchor, model_node *n)
{
    if (anchor == NULL) {
        return;
    }
    char *name = kt_arena_strdup(r->b.arena, (const char *)anchor);
    kt_map_set(&r->anchors, name, n);
}

static kt_status too_big(const yaml_reader *r, yaml_mark_t m, kt_err *err)
{
    return kt_err_set(err, KT_ETOOBIG, "%s:%zu:%zu: document nests deeper than %zu or has more than %zu nodes",
                      r->file, m.line + 1, m.column + 1, r->b.limits.max_depth,
                      r->b.limits.max_nodes);
}

kt_status model_parse_yaml(kt_arena *arena,
                           const char *file,
                           const char *buf,
                           size_t len,
                           const model_parse_limits *limits,
                           model_doc_cb cb,
                           void *user,
                           kt_err *err)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        return kt_err_set_dep(err, KT_ENOMEM, "yaml", 0, "yaml parser init");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    yaml_reader r;
    memset(&r, 0, sizeof r);
    r.file = file;
    model_builder__init(&r.b, arena, limits);
    kt_map_init(&r.anchors);

    kt_status st = KT_OK;
    size_t doc_index = 0;
    model_mark doc_mark = { file, 1, 1 };
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            st = kt_err_set_dep(err, KT_EINVAL, "yaml", parser.error, "%s:%zu:%zu: %s%s%s", file,
                                parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                                parser.problem != NULL ? parser.problem : "syntax error",
                                parser.context != NULL ? " " : "",
                                parser.context != NULL ? parser.context : "");
            break;
        }
        int done = 0;
        model_node *n = NULL;
        model_mark mk = mark_of(&r, ev.start_mark);
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            model_builder__reset(&r.b);
            doc_mark = mk;
            break;
        case YAML_DOCUMENT_END_EVENT: {
            model_doc doc = { r.b.root, doc_mark, doc_index++ };
            st = cb(&doc, user);
            kt_map_fini(&r.anchors);
            kt_map_init(&r.anchors);
            kt_arena_reset(arena);
            model_builder__reset(&r.b);
            done = st != KT_OK;
            break;
        }
        case YAML_SCALAR_EVENT:
            st = model_builder__scalar(&r.b, &mk, (const char *)ev.data.scalar.value,
                                       ev.data.scalar.length,
                                       ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE, &n);
            if (st == KT_OK) {
                remember_anchor(&r, ev.data.scalar.anchor, n);
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
            st = model_builder__open(&r.b, MODEL_NODE_SEQ, &mk, &n);
            if (st == KT_OK) {
                remember_anchor(&r, ev.data.sequence_start.anchor, n);
            }
            break;
        case YAML_MAPPING_START_EVENT:
            st = model_builder__open(&r.b, MODEL_NODE_MAP, &mk, &n);
            if (st == KT_OK) {
                remember_anchor(&r, ev.data.mapping_start.anchor, n);
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            model_builder__close(&r.b);
            break;
        case YAML_ALIAS_EVENT: {
            model_node *target = kt_map_get(&r.anchors, (const char *)ev.data.alias.anchor);
            if (target == NULL) {
                st = kt_err_set(err, KT_EINVAL, "%s:%u:%u: unknown alias *%s", file, mk.line,
                                mk.col, (const char *)ev.data.alias.anchor);
            } else {
                model_builder__attach(&r.b, target);
            }
            break;
        }
        case YAML_STREAM_START_EVENT:
        case YAML_NO_EVENT:
            break;
        }
        if (st == KT_ETOOBIG) {
            too_big(&r, ev.start_mark, err);
        }
        yaml_event_delete(&ev);
        if (done || st != KT_OK) {
            break;
        }
    }
    kt_map_fini(&r.anchors);
    model_builder__fini(&r.b);
    yaml_parser_delete(&parser);
    kt_arena_reset(arena);
    return st;
}

typedef struct any_ctx {
    model_doc_cb cb;
    void *user;
    size_t delivered;
} any_ctx;

static kt_status any_cb(const model_doc *doc, void *user)
{
    any_ctx *c = user;
    c->delivered++;
    return c->cb(doc, c->user);
}

/*
 * JSON first when the text starts like JSON; a flow-style YAML document
 * ({a: b}) also starts that way, so a JSON syntax error before the first
 * document falls back to YAML.
 */
kt_status model_parse_any(kt_arena *arena,
                          const char *file,
                          const char *buf,
                          size_t len,
                          const model_parse_limits *limits,
                          model_doc_cb cb,
                          void *user,
                          kt_err *err)
{
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n')) {
        i++;
    }
    if (i < len && (buf[i] == '{' || buf[i] == '[')) {
        any_ctx c = { cb, user, 0 };
        kt_err jerr = { 0 };
        kt_status st = model_parse_json(arena, file, buf, len, limits, any_cb, &c, &jerr);
        if (st != KT_EINVAL || c.delivered > 0) {
            if (st != KT_OK && err != NULL && err->status == KT_OK) {
                *err = jerr;
            }
            return st;
        }
    }
    return model_parse_yaml(arena, file, buf, len, limits, cb, user, err);
}
