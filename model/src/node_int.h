/*
 * node_int.h — the tree builder shared by the YAML and JSON readers.
 *
 * Readers open containers, add scalars and close containers; children
 * collect on one shared stack and are copied into the arena when their
 * container closes, so building costs one copy per node and no per-node
 * heap allocation.
 */
#ifndef KT_MODEL_NODE_INT_H
#define KT_MODEL_NODE_INT_H

#include "model/node.h"

typedef struct model_builder_frame {
    model_node *node;
    size_t first_child; /* index into the child stack */
} model_builder_frame;

typedef struct model_builder {
    kt_arena *arena;
    model_parse_limits limits;
    model_builder_frame *frames;
    size_t n_frames, cap_frames;
    model_node **children;
    size_t n_children, cap_children;
    size_t n_nodes;   /* in the current document */
    model_node *root; /* the finished top-level node */
} model_builder;

void model_builder__init(model_builder *b, kt_arena *arena, const model_parse_limits *limits);
void model_builder__fini(model_builder *b);
/* Start a new document (forget root, count nodes from zero). */
void model_builder__reset(model_builder *b);
/* KT_ETOOBIG past a limit (the reader reports where). */
kt_status model_builder__scalar(model_builder *b,
                                const model_mark *mark,
                                const char *s,
                                size_t len,
                                int quoted,
                                model_node **out);
kt_status model_builder__open(model_builder *b, model_node_kind kind, const model_mark *mark, model_node **out);
void model_builder__close(model_builder *b);
/* Attach an existing node (YAML alias) as the next child. */
kt_status model_builder__attach(model_builder *b, model_node *n);
int model_builder__depth(const model_builder *b);

#endif
