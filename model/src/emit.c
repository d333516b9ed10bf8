/*
 * emit.c — cJSON trees as block-style YAML and compact JSON. See model/emit.h.
 *
 * YAML layout (what kubectl and Go's yaml.v2 write, so diffs stay small):
 * 2-space indent, a sequence under a map key at the key's indent
 * ("spec:\n  properties:\n  - name: x"), sequence items that are maps start
 * on the "- " line, empty containers as {} and [].
 *
 * Quoting: a string is written plain only when every YAML 1.1 and 1.2 reader
 * reads it back as the same string. Otherwise it is double-quoted with
 * escapes. That covers the empty string, the YAML 1.1 booleans and nulls
 * (yes, No, ON, ~, ...), anything starting like a number, date or sexagesimal
 * (first character a digit, or a sign or '.' before a digit), .inf/.nan,
 * leading indicators, ": " and " #", a trailing ':', leading or trailing
 * blanks, control and non-printable characters. Invalid UTF-8 bytes cannot be
 * written in YAML or JSON text; they become U+FFFD.
 *
 * Numbers: integral values below 2^63 are written as integers; others with
 * the fewest digits (15..17) that read back to the same double, with ".0"
 * added before an exponent so YAML 1.1 reads a float too. NaN and infinities
 * become .nan/.inf in YAML and null in JSON.
 *
 * On failure the output buffer is restored to its length at the call.
 *
 * Thread: any (no shared state).
 */
#include "model/emit.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_int.h"

#define EMIT_MAX_DEPTH 512

/* ---- UTF-8 ---------------------------------------------------------------- */

/*
 * Decode one UTF-8 sequence at s (n bytes available). Returns its length
 * and the code point in *cp, or 0 when the bytes are not valid UTF-8
 * (overlong, surrogate, past U+10FFFF, truncated).
 */
size_t model__utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v;
    uint32_t min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1fu;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0fu;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07u;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }
    *cp = v;
    return len;
}

/* YAML's printable set minus what we always escape (tab, CR, LF, NEL, LS, PS, BOM). */
static int yaml_plain_printable(uint32_t cp)
{
    if (cp >= 0x20 && cp <= 0x7e) {
        return 1;
    }
    /* U+2028/2029 are line breaks to YAML 1.1 readers. */
    return (cp >= 0xa0 && cp <= 0xd7ff && cp != 0x2028 && cp != 0x2029) ||
           (cp >= 0xe000 && cp <= 0xfffd && cp != 0xfeff) || (cp >= 0x10000 && cp <= 0x10ffff);
}

/* ---- YAML scalars ----------------------------------------------------------- */

static int ieq(const char *a, const char *b)
{
    for (; *a != '\0' && *b != '\0'; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
        if (x != *b) {
            return 0;
        }
    }
    return *a == *b;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Words some YAML reader (1.1 or 1.2) turns into null, a bool, inf or nan. */
static int reserved_word(const char *s)
{
    static const char *const words[] = {
        "null", "~", "true", "false", "yes",   "no",   "on", "off",
        "y",    "n", ".inf", "+.inf", "-.inf", ".nan", "=",  "<<"
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (ieq(s, words[i])) {
            return 1;
        }
    }
    return 0;
}

static int needs_quotes(const char *s, size_t len)
{
    if (len == 0 || reserved_word(s)) {
        return 1;
    }
    /* Numbers, dates, times, sexagesimals: anything that starts like one. */
    if (is_digit(s[0])) {
        return 1;
    }
    if ((s[0] == '-' || s[0] == '+' || s[0] == '.') && len > 1 && (is_digit(s[1]) || s[1] == '.')) {
        return 1;
    }
    if (strchr("-?:,[]{}#&*!|>'\"%@`", s[0]) != NULL) {
        return 1;
    }
    if (s[0] == ' ' || s[len - 1] == ' ' || s[len - 1] == ':') {
        return 1;
    }
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (s[i] == ':' && i + 1 < len && s[i + 1] == ' ') {
            return 1;
        }
        if (s[i] == ' ' && i + 1 < len && s[i + 1] == '#') {
            return 1;
        }
        uint32_t cp;
        size_t n = model__utf8_decode(u + i, len - i, &cp);
        if (n == 0 || !yaml_plain_printable(cp)) {
            return 1;
        }
        i += n;
    }
    return 0;
}

static kt_status put_quoted(const char *s, size_t len, int yaml, kt_buf *out)
{
    kt_status st = kt_buf_putc(out, '"');
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len && st == KT_OK;) {
        uint32_t cp;
        size_t n = model__utf8_decode(u + i, len - i, &cp);
        if (n == 0) {
            st = kt_buf_puts(out, "\\ufffd");
            i++;
            continue;
        }
        switch (cp) {
        case '"':
            st = kt_buf_puts(out, "\\\"");
            break;
        case '\\':
            st = kt_buf_puts(out, "\\\\");
            break;
        case '\n':
            st = kt_buf_puts(out, "\\n");
            break;
        case '\t':
            st = kt_buf_puts(out, "\\t");
            break;
        case '\r':
            st = kt_buf_puts(out, "\\r");
            break;
        default:
            if (cp < 0x20 || cp == 0x7f) {
                st = kt_buf_printf(out, "\\u%04x", (unsigned)cp);
            } else if (yaml && cp >= 0x80 && !yaml_plain_printable(cp)) {
                st = cp > 0xffff ? kt_buf_printf(out, "\\U%08x", (unsigned)cp)
                                 : kt_buf_printf(out, "\\u%04x", (unsigned)cp);
            } else if (!yaml && (cp == 0x2028 || cp == 0x2029)) {
                /* Valid JSON, but not inside JavaScript strings: escape anyway. */
                st = kt_buf_printf(out, "\\u%04x", (unsigned)cp);
            } else {
                st = kt_buf_append(out, s + i, n);
            }
            break;
        }
        i += n;
    }
    if (st == KT_OK) {
        st = kt_buf_putc(out, '"');
    }
    return st;
}

static kt_status put_yaml_string(const char *s, kt_buf *out)
{
    size_t len = strlen(s);
    if (needs_quotes(s, len)) {
        return put_quoted(s, len, 1, out);
    }
    return kt_buf_append(out, s, len);
}

kt_status model_emit_yaml_scalar(const char *s, kt_buf *out)
{
    size_t start = out->len;
    kt_status st = s == NULL ? kt_buf_puts(out, "null") : put_yaml_string(s, out);
    if (st != KT_OK && out->data != NULL) {
        out->len = start;
        out->data[start] = '\0';
    }
    return st;
}

/* ---- numbers ---------------------------------------------------------------- */

static kt_status put_number(double v, int yaml, kt_buf *out)
{
    if (isnan(v)) {
        return kt_buf_puts(out, yaml ? ".nan" : "null");
    }
    if (isinf(v)) {
        if (!yaml) {
            return kt_buf_puts(out, "null");
        }
        return kt_buf_puts(out, v < 0 ? "-.inf" : ".inf");
    }
    /* No floor(): kt_model does not link libm. */
    if (fabs(v) < 9.2e18 && (double)(long long)v == v) {
        return kt_buf_printf(out, "%lld", (long long)v);
    }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) {
            break;
        }
    }
    char *e = strchr(tmp, 'e');
    if (e != NULL && memchr(tmp, '.', (size_t)(e - tmp)) == NULL) {
        kt_status st = kt_buf_append(out, tmp, (size_t)(e - tmp));
        if (st == KT_OK) {
            st = kt_buf_puts(out, ".0");
        }
        return st == KT_OK ? kt_buf_puts(out, e) : st;
    }
    return kt_buf_puts(out, tmp);
}

/* ---- YAML blocks ------------------------------------------------------------- */

static int is_container(const cJSON *n)
{
    return cJSON_IsObject(n) || cJSON_IsArray(n);
}

static int is_empty_container(const cJSON *n)
{
    return is_container(n) && n->child == NULL;
}

static kt_status put_indent(kt_buf *out, int indent)
{
    static const char spaces[] = "                                ";
    kt_status st = KT_OK;
    while (indent > 0 && st == KT_OK) {
        int k = indent < 32 ? indent : 32;
        st = kt_buf_append(out, spaces, (size_t)k);
        indent -= k;
    }
    return st;
}

/* A scalar, {} or [] (anything that fits on the current line). */
static kt_status put_yaml_inline(const cJSON *n, kt_buf *out)
{
    if (cJSON_IsObject(n)) {
        return kt_buf_puts(out, "{}");
    }
    if (cJSON_IsArray(n)) {
        return kt_buf_puts(out, "[]");
    }
    if (cJSON_IsString(n) || cJSON_IsRaw(n)) {
        return put_yaml_string(n->valuestring != NULL ? n->valuestring : "", out);
    }
    if (cJSON_IsNumber(n)) {
        return put_number(n->valuedouble, 1, out);
    }
    if (cJSON_IsTrue(n)) {
        return kt_buf_puts(out, "true");
    }
    if (cJSON_IsFalse(n)) {
        return kt_buf_puts(out, "false");
    }
    return kt_buf_puts(out, "null");
}

/*
 * Write a non-empty map or sequence at indent. With first_inline the cursor
 * already sits where the first entry goes (after "- ").
 */
static kt_status
put_yaml_block(const cJSON *n, int indent, int first_inline, int depth, kt_buf *out)
{
    if (depth > EMIT_MAX_DEPTH) {
        return KT_EINVAL;
    }
    kt_status st = KT_OK;
    int first = 1;
    for (const cJSON *c = n->child; c != NULL && st == KT_OK; c = c->next) {
        if (!(first && first_inline)) {
            st = put_indent(out, indent);
        }
        first = 0;
        if (st != KT_OK) {
            break;
        }
        if (cJSON_IsObject(n)) {
            st = put_yaml_string(c->string != NULL ? c->string : "", out);
            if (st == KT_OK) {
                st = kt_buf_putc(out, ':');
            }
            if (st != KT_OK) {
                break;
            }
            if (is_container(c) && !is_empty_container(c)) {
                st = kt_buf_putc(out, '\n');
                if (st == KT_OK) {
                    /* Sequences under a key stay at the key's indent. */
                    int sub = cJSON_IsArray(c) ? indent : indent + 2;
                    st = put_yaml_block(c, sub, 0, depth + 1, out);
                }
                continue;
            }
            st = kt_buf_putc(out, ' ');
        } else {
            st = kt_buf_puts(out, "- ");
            if (st == KT_OK && is_container(c) && !is_empty_container(c)) {
                st = put_yaml_block(c, indent + 2, 1, depth + 1, out);
                continue;
            }
        }
        if (st == KT_OK) {
            st = put_yaml_inline(c, out);
        }
        if (st == KT_OK) {
            st = kt_buf_putc(out, '\n');
        }
    }
    return st;
}

kt_status model_emit_yaml_doc(const cJSON *doc, kt_buf *out)
{
    size_t start = out->len;
    kt_status st = kt_buf_puts(out, "---\n");
    if (st == KT_OK) {
        if (doc != NULL && is_container(doc) && !is_empty_container(doc)) {
            st = put_yaml_block(doc, 0, 0, 0, out);
        } else {
            st = doc == NULL ? kt_buf_puts(out, "null") : put_yaml_inline(doc, out);
            if (st == KT_OK) {
                st = kt_buf_putc(out, '\n');
            }
        }
    }
    if (st != KT_OK && out->data != NULL) {
        out->len = start;
        out->data[start] = '\0';
    }
    return st;
}

/* ---- JSON ---------------------------------------------------------------------- */

static kt_status put_json(const cJSON *n, int depth, kt_buf *out)
{
    if (depth > EMIT_MAX_DEPTH) {
        return KT_EINVAL;
    }
    if (cJSON_IsObject(n) || cJSON_IsArray(n)) {
        int obj = cJSON_IsObject(n);
        kt_status st = kt_buf_putc(out, obj ? '{' : '[');
        for (const cJSON *c = n->child; c != NULL && st == KT_OK; c = c->next) {
            if (c != n->child) {
                st = kt_buf_putc(out, ',');
            }
            if (st == KT_OK && obj) {
                const char *k = c->string != NULL ? c->string : "";
                st = put_quoted(k, strlen(k), 0, out);
                if (st == KT_OK) {
                    st = kt_buf_putc(out, ':');
                }
            }
            if (st == KT_OK) {
                st = put_json(c, depth + 1, out);
            }
        }
        return st == KT_OK ? kt_buf_putc(out, obj ? '}' : ']') : st;
    }
    if (cJSON_IsString(n)) {
        const char *s = n->valuestring != NULL ? n->valuestring : "";
        return put_quoted(s, strlen(s), 0, out);
    }
    if (cJSON_IsRaw(n) && n->valuestring != NULL) {
        return kt_buf_puts(out, n->valuestring);
    }
    if (cJSON_IsNumber(n)) {
        return put_number(n->valuedouble, 0, out);
    }
    if (cJSON_IsTrue(n)) {
        return kt_buf_puts(out, "true");
    }
    if (cJSON_IsFalse(n)) {
        return kt_buf_puts(out, "false");
    }
    return kt_buf_puts(out, "null");
}

kt_status model_emit_json_doc(const cJSON *doc, kt_buf *out)
{
    size_t start = out->len;
    kt_status st = doc == NULL ? kt_buf_puts(out, "null") : put_json(doc, 0, out);
    if (st == KT_OK) {
        st = kt_buf_putc(out, '\n');
    }
    if (st != KT_OK && out->data != NULL) {
        out->len = start;
        out->data[start] = '\0';
    }
    return st;
}
