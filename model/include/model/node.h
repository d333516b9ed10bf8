/*
 * model/node.h — a parsed YAML or JSON document as a tree with source marks.
 *
 * Both readers (libyaml for YAML, a position-tracking reader for JSON) build
 * the same tree, so schema and semantic validation are written once and
 * every error can name file:line:column. Nodes live in a kt_arena owned by
 * the caller; a document is valid only inside the callback that receives it
 * (the reader rewinds the arena after each document).
 *
 * Scalars keep their text; `quoted` tells whether YAML quoted them (a quoted
 * "true" is a string, a plain true a boolean). YAML aliases are resolved by
 * sharing the anchored subtree. Merge keys (<<) are not supported and are
 * reported.
 *
 * Thread: one owner (the arena's).
 */
#ifndef KT_MODEL_NODE_H
#define KT_MODEL_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "kt/err.h"
#include "kt/mem.h"

typedef enum model_node_kind {
    MODEL_NODE_SCALAR = 0,
    MODEL_NODE_MAP = 1,
    MODEL_NODE_SEQ = 2
} model_node_kind;

typedef struct model_mark {
    const char *file; /* borrowed: lives as long as the loader's file table */
    uint32_t line;    /* 1-based */
    uint32_t col;     /* 1-based */
} model_mark;

typedef struct model_node model_node;
struct model_node {
    model_node_kind kind;
    uint8_t quoted; /* scalar only: 1 when written quoted (always a string) */
    model_mark mark;
    const char *str; /* scalar text, NUL-terminated */
    size_t len;      /* scalar length */
    size_t n;        /* SEQ: items; MAP: pairs */
    model_node **items; /* SEQ: items[i]; MAP: key items[2i], value items[2i+1] */
};

/* Scalar classification, YAML 1.2 core schema (plain scalars only). */
typedef enum model_scalar_type {
    MODEL_SCALAR_NULL,
    MODEL_SCALAR_BOOL,
    MODEL_SCALAR_INT,
    MODEL_SCALAR_FLOAT,
    MODEL_SCALAR_STRING
} model_scalar_type;

model_scalar_type model_node_scalar_type(const model_node *n);
/* Map lookup; NULL when absent or when map is not a MAP. */
const model_node *model_node_get(const model_node *map, const char *key);
/* The scalar string of map[key] when it is a scalar, else NULL. */
const char *model_node_get_str(const model_node *map, const char *key);
/* Parse a scalar: KT_OK, or KT_EINVAL when it is not of that type. */
kt_status model_node_bool(const model_node *n, int *out);
kt_status model_node_int(const model_node *n, long long *out);
kt_status model_node_double(const model_node *n, double *out);
/* Human name of a node's type for messages: "string", "integer", "map", ... */
const char *model_node_type_name(const model_node *n);

/* Deep copy of n (aliases become copies) into arena. */
model_node *model_node_clone(kt_arena *arena, const model_node *n);
/* Append n as compact JSON (scalars typed by model_node_scalar_type). */
struct kt_buf;
kt_status model_node_to_json(const model_node *n, struct kt_buf *out);

/* One document of a stream. */
typedef struct model_doc {
    const model_node *root; /* NULL for an empty document */
    model_mark mark;        /* where the document starts */
    size_t index;           /* 0-based position in the stream */
} model_doc;

/* Return KT_OK to go on; anything else stops the stream and is returned. */
typedef kt_status (*model_doc_cb)(const model_doc *doc, void *user);

/* Parse limits against hostile input. */
typedef struct model_parse_limits {
    size_t max_depth; /* nesting; default 64 */
    size_t max_nodes; /* per document; default 1,000,000 */
} model_parse_limits;

/*
 * Parse every document of buf (YAML stream, or JSON value(s)) and call cb
 * for each. Nodes are allocated in arena, which is rewound after each
 * callback. file names the input in marks and errors and must outlive the
 * call. Syntax errors return KT_EINVAL with "file:line:col: problem" in err.
 */
kt_status model_parse_yaml(kt_arena *arena,
                           const char *file,
                           const char *buf,
                           size_t len,
                           const model_parse_limits *limits,
                           model_doc_cb cb,
                           void *user,
                           kt_err *err);
kt_status model_parse_json(kt_arena *arena,
                           const char *file,
                           const char *buf,
                           size_t len,
                           const model_parse_limits *limits,
                           model_doc_cb cb,
                           void *user,
                           kt_err *err);
/* JSON when the first non-blank byte is '{' or '[', else YAML. */
kt_status model_parse_any(kt_arena *arena,
                          const char *file,
                          const char *buf,
                          size_t len,
                          const model_parse_limits *limits,
                          model_doc_cb cb,
                          void *user,
                          kt_err *err);

#endif
