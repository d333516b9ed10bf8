/*
 * json_reader.c — JSON text to model_node trees, with line:column marks.
 *
 * DESIGN: cJSON keeps no source positions, and every validation error must
 * name file:line:col; libyaml reads JSON too but at about 27 MB/s here,
 * too slow for the 711,600-instance model (docs/adr/0002). This reader
 * is a single pass over the bytes that builds the same tree as the YAML
 * reader. It accepts a stream of top-level values separated by whitespace
 * (kubectl's JSON stream), each one a document. Strict RFC 8259 otherwise:
 * no comments, no trailing commas, no control characters in strings.
 */
#include <string.h>

#include "kt/buf.h"
#include "model/node.h"
#include "node_int.h"

typedef struct json_reader {
    model_builder b;
    const char *file;
    const char *p, *end;
    const char *line_start;
    uint32_t line;
    kt_buf str; /* unescaped string scratch */
    kt_err *err;
} json_reader;

static model_mark mark_here(const json_reader *r)
{
    model_mark m = { r->file, r->line, (uint32_t)(r->p - r->line_start) + 1 };
    return m;
}

static kt_status fail(json_reader *r, const char *what)
{
    model_mark m = mark_here(r);
    return kt_err_set(r->err, KT_EINVAL, "%s:%u:%u: %s", r->file, m.line, m.col, what);
}

static kt_status fail_big(json_reader *r)
{
    model_mark m = mark_here(r);
    return kt_err_set(r->err, KT_ETOOBIG, "%s:%u:%u: document nests deeper than %zu or has more than %zu nodes",
                      r->file, m.line, m.col, r->b.limits.max_depth, r->b.limits.max_nodes);
}

static void skip_ws(json_reader *r)
{
    while (r->p < r->end) {
        char c = *r->p;
        if (c == '\n') {
            r->line++;
            r->line_start = ++r->p;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            r->p++;
        } else {
            break;
        }
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int read_u4(json_reader *r, unsigned *out)
{
    if (r->end - r->p < 4) {
        return -1;
    }
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(r->p[i]);
        if (h < 0) {
            return -1;
        }
        v = v * 16 + (unsigned)h;
    }
    r->p += 4;
    *out = v;
    return 0;
}

static void put_utf8(kt_buf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    kt_buf_append(b, u, n);
}

/* At the opening quote. Fast path: no escapes, point at the text itself. */
static kt_status read_string(json_reader *r)
{
    model_mark m = mark_here(r);
    r->p++;
    const char *start = r->p;
    while (r->p < r->end && *r->p != '"' && *r->p != '\\' && (unsigned char)*r->p >= 0x20) {
        r->p++;
    }
    if (r->p < r->end && *r->p == '"') {
        size_t len = (size_t)(r->p - start);
        r->p++;
        kt_status st = model_builder__scalar(&r->b, &m, start, len, 1, NULL);
        return st == KT_OK ? KT_OK : fail_big(r);
    }
    kt_buf_reset(&r->str);
    if (kt_buf_append(&r->str, start, (size_t)(r->p - start)) != KT_OK) {
        return fail(r, "string too long");
    }
    while (r->p < r->end) {
        char c = *r->p;
        if (c == '"') {
            r->p++;
            kt_status st = model_builder__scalar(&r->b, &m, r->str.data, r->str.len, 1, NULL);
            return st == KT_OK ? KT_OK : fail_big(r);
        }
        if ((unsigned char)c < 0x20) {
            return fail(r, "control character in string");
        }
        if (c != '\\') {
            kt_buf_putc(&r->str, c);
            r->p++;
            continue;
        }
        r->p++;
        if (r->p >= r->end) {
            break;
        }
        char e = *r->p++;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            kt_buf_putc(&r->str, e);
            break;
        case 'b':
            kt_buf_putc(&r->str, '\b');
            break;
        case 'f':
            kt_buf_putc(&r->str, '\f');
            break;
        case 'n':
            kt_buf_putc(&r->str, '\n');
            break;
        case 'r':
            kt_buf_putc(&r->str, '\r');
            break;
        case 't':
            kt_buf_putc(&r->str, '\t');
            break;
        case 'u': {
            unsigned cp;
            if (read_u4(r, &cp) != 0) {
                return fail(r, "bad \\u escape");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u') {
                    return fail(r, "unpaired surrogate in \\u escape");
                }
                r->p += 2;
                if (read_u4(r, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    return fail(r, "unpaired surrogate in \\u escape");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return fail(r, "unpaired surrogate in \\u escape");
            }
            if (cp == 0) {
                return fail(r, "NUL in string");
            }
            put_utf8(&r->str, cp);
            break;
        }
        default:
            return fail(r, "bad escape in string");
        }
        if (r->str.len >= r->str.max) {
            return fail(r, "string too long");
        }
    }
    return fail(r, "unterminated string");
}

static kt_status read_number(json_reader *r)
{
    model_mark m = mark_here(r);
    const char *s = r->p;
    if (r->p < r->end && *r->p == '-') {
        r->p++;
    }
    if (r->p >= r->end) {
        return fail(r, "bad number");
    }
    if (*r->p == '0') {
        r->p++;
    } else if (*r->p >= '1' && *r->p <= '9') {
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
            r->p++;
        }
    } else {
        return fail(r, "bad number");
    }
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (r->p >= r->end || *r->p < '0' || *r->p > '9') {
            return fail(r, "bad number");
        }
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
            r->p++;
        }
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-')) {
            r->p++;
        }
        if (r->p >= r->end || *r->p < '0' || *r->p > '9') {
            return fail(r, "bad number");
        }
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
            r->p++;
        }
    }
    kt_status st = model_builder__scalar(&r->b, &m, s, (size_t)(r->p - s), 0, NULL);
    return st == KT_OK ? KT_OK : fail_big(r);
}

static kt_status read_literal(json_reader *r)
{
    static const char *const lits[] = { "true", "false", "null" };
    model_mark m = mark_here(r);
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(r->end - r->p) >= n && memcmp(r->p, lits[i], n) == 0) {
            r->p += n;
            kt_status st = model_builder__scalar(&r->b, &m, lits[i], n, 0, NULL);
            return st == KT_OK ? KT_OK : fail_big(r);
        }
    }
    return fail(r, "unexpected character");
}

/*
 * One value, iteratively: an explicit state per open container keeps deep
 * input from using the C stack (the builder caps depth).
 */
static kt_status read_value(json_reader *r)
{
    for (;;) {
        skip_ws(r);
        if (r->p >= r->end) {
            return fail(r, "unexpected end of input");
        }
        char c = *r->p;
        kt_status st;
        if (c == '{' || c == '[') {
            model_mark m = mark_here(r);
            st = model_builder__open(&r->b, c == '{' ? MODEL_NODE_MAP : MODEL_NODE_SEQ, &m, NULL);
            if (st != KT_OK) {
                return fail_big(r);
            }
            r->p++;
            skip_ws(r);
            if (r->p < r->end && *r->p == (c == '{' ? '}' : ']')) {
                r->p++;
                model_builder__close(&r->b);
                goto after_value;
            }
            if (c == '{') {
                if (r->p >= r->end || *r->p != '"') {
                    return fail(r, "expected a string key");
                }
                if ((st = read_string(r)) != KT_OK) {
                    return st;
                }
                skip_ws(r);
                if (r->p >= r->end || *r->p != ':') {
                    return fail(r, "expected ':'");
                }
                r->p++;
            }
            continue; /* read the first member value */
        }
        if (c == '"') {
            st = read_string(r);
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            st = read_number(r);
        } else {
            st = read_literal(r);
        }
        if (st != KT_OK) {
            return st;
        }
    after_value:
        /* Close containers or move to the next member. */
        for (;;) {
            if (model_builder__depth(&r->b) == 0) {
                return KT_OK;
            }
            model_node *open = r->b.frames[r->b.n_frames - 1].node;
            skip_ws(r);
            if (r->p >= r->end) {
                return fail(r, "unexpected end of input");
            }
            char d = *r->p;
            if (d == ',') {
                r->p++;
                if (open->kind == MODEL_NODE_MAP) {
                    skip_ws(r);
                    if (r->p >= r->end || *r->p != '"') {
                        return fail(r, "expected a string key");
                    }
                    if ((st = read_string(r)) != KT_OK) {
                        return st;
                    }
                    skip_ws(r);
                    if (r->p >= r->end || *r->p != ':') {
                        return fail(r, "expected ':'");
                    }
                    r->p++;
                }
                break; /* read the next value */
            }
            if ((d == '}' && open->kind == MODEL_NODE_MAP) ||
                (d == ']' && open->kind == MODEL_NODE_SEQ)) {
                r->p++;
                model_builder__close(&r->b);
                continue;
            }
            return fail(r, open->kind == MODEL_NODE_MAP ? "expected ',' or '}'"
                                                        : "expected ',' or ']'");
        }
    }
}

kt_status model_parse_json(kt_arena *arena,
                           const char *file,
                           const char *buf,
                           size_t len,
                           const model_parse_limits *limits,
                           model_doc_cb cb,
                           void *user,
                           kt_err *err)
{
    json_reader r;
    memset(&r, 0, sizeof r);
    r.file = file;
    r.p = buf;
    r.end = buf + len;
    r.line_start = buf;
    r.line = 1;
    r.err = err;
    kt_buf_init(&r.str, 16u * 1024u * 1024u);
    model_builder__init(&r.b, arena, limits);
    /* A UTF-8 byte order mark is allowed before the first value. */
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
        r.p += 3;
        r.line_start = r.p;
    }
    kt_status st = KT_OK;
    size_t index = 0;
    for (;;) {
        skip_ws(&r);
        if (r.p >= r.end) {
            break;
        }
        model_builder__reset(&r.b);
        model_mark m = mark_here(&r);
        st = read_value(&r);
        if (st != KT_OK) {
            break;
        }
        model_doc doc = { r.b.root, m, index++ };
        st = cb(&doc, user);
        kt_arena_reset(arena);
        if (st != KT_OK) {
            break;
        }
    }
    if (st == KT_OK && index == 0) {
        /* An empty input is an empty stream, like an empty YAML file. */
        st = KT_OK;
    }
    model_builder__fini(&r.b);
    kt_buf_fini(&r.str);
    kt_arena_reset(arena);
    return st;
}
