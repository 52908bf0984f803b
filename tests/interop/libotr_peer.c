/*
 * libotr_peer: an interop test peer for offrecord.
 *
 * Speaks the peer protocol (tests/interop/PEER-PROTOCOL, JSON Lines on
 * stdin/stdout) on top of libotr 4.1.x.  One local account talks to one
 * correspondent; every message the library wants to put on the network is
 * printed as a "wire" event, every network message the router delivers
 * arrives as a "recv" command.
 *
 * Build: gcc -Wall -Wextra -O2 -o libotr_peer libotr_peer.c -lotr -lgcrypt
 */

#define _GNU_SOURCE

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gcrypt.h>

/* libotr's headers are not self-contained; this order works. */
#include <libotr/proto.h>
#include <libotr/b64.h>
#include <libotr/context.h>
#include <libotr/instag.h>
#include <libotr/message.h>
#include <libotr/privkey.h>
#include <libotr/sm.h>
#include <libotr/tlv.h>
#include <libotr/userstate.h>
#include <libotr/version.h>

/* ------------------------------------------------------------------ */
/* Small utilities                                                      */
/* ------------------------------------------------------------------ */

static void die_oom(void)
{
    fputs("libotr_peer: out of memory\n", stderr);
    exit(70);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) die_oom();
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) die_oom();
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *p = xmalloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

static void logmsg(const char *fmt, ...)
{
    va_list ap;
    fputs("libotr_peer: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* Growable byte buffer. */
typedef struct {
    char *p;
    size_t len;
    size_t cap;
} Buf;

static void buf_reserve(Buf *b, size_t extra)
{
    if (b->len + extra + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (b->len + extra + 1 > ncap) {
            if (ncap > SIZE_MAX / 2) die_oom();
            ncap *= 2;
        }
        b->p = xrealloc(b->p, ncap);
        b->cap = ncap;
    }
}

static void buf_putn(Buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_puts(Buf *b, const char *s)
{
    buf_putn(b, s, strlen(s));
}

static void buf_putc(Buf *b, char c)
{
    buf_putn(b, &c, 1);
}

static void buf_free(Buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------ */
/* JSON values: parser and emitter for the subset the protocol uses     */
/* ------------------------------------------------------------------ */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } JType;

typedef struct JVal JVal;
struct JVal {
    JType type;
    int boolean;        /* J_BOOL */
    char *str;          /* J_STR: decoded bytes (may contain NUL);
                           J_NUM: the literal text as written */
    size_t len;         /* length of str */
    size_t n;           /* J_ARR / J_OBJ: number of members */
    JVal **items;       /* J_ARR / J_OBJ: member values */
    char **keys;        /* J_OBJ: member names (decoded bytes) */
    size_t *keylens;    /* J_OBJ: member name lengths */
};

#define JSON_MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t len;
    size_t pos;
    const char *err;
} JParser;

static void jval_free(JVal *v)
{
    size_t i;
    if (!v) return;
    free(v->str);
    for (i = 0; i < v->n; i++) {
        jval_free(v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->keylens);
    free(v);
}

static JVal *jval_new(JType t)
{
    JVal *v = xmalloc(sizeof(*v));
    memset(v, 0, sizeof(*v));
    v->type = t;
    return v;
}

static void jp_skip_ws(JParser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') p->pos++;
        else break;
    }
}

static int jp_literal(JParser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos >= n && memcmp(p->s + p->pos, word, n) == 0) {
        p->pos += n;
        return 1;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Read four hex digits at p->pos; returns -1 if they are not hex. */
static long jp_hex4(JParser *p)
{
    long v = 0;
    size_t i;
    if (p->len - p->pos < 4) return -1;
    for (i = 0; i < 4; i++) {
        int h = hexval(p->s[p->pos + i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    p->pos += 4;
    return v;
}

static void buf_put_utf8(Buf *b, unsigned long cp)
{
    char tmp[4];
    if (cp < 0x80) {
        tmp[0] = (char)cp;
        buf_putn(b, tmp, 1);
    } else if (cp < 0x800) {
        tmp[0] = (char)(0xC0 | (cp >> 6));
        tmp[1] = (char)(0x80 | (cp & 0x3F));
        buf_putn(b, tmp, 2);
    } else if (cp < 0x10000) {
        tmp[0] = (char)(0xE0 | (cp >> 12));
        tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        tmp[2] = (char)(0x80 | (cp & 0x3F));
        buf_putn(b, tmp, 3);
    } else {
        tmp[0] = (char)(0xF0 | (cp >> 18));
        tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        tmp[3] = (char)(0x80 | (cp & 0x3F));
        buf_putn(b, tmp, 4);
    }
}

/* Parses a string starting at the opening quote.  On success the decoded
 * bytes are left in *out (NUL-terminated, length in out->len). */
static int jp_string(JParser *p, Buf *out)
{
    if (p->pos >= p->len || p->s[p->pos] != '"') {
        p->err = "expected a string";
        return 0;
    }
    p->pos++;
    buf_reserve(out, 0);
    out->p[out->len] = '\0';
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            return 1;
        }
        if (c < 0x20) {
            p->err = "control character in string";
            return 0;
        }
        if (c != '\\') {
            /* Copy a run of ordinary bytes at once. */
            size_t start = p->pos;
            while (p->pos < p->len) {
                unsigned char d = (unsigned char)p->s[p->pos];
                if (d == '"' || d == '\\' || d < 0x20) break;
                p->pos++;
            }
            buf_putn(out, p->s + start, p->pos - start);
            continue;
        }
        /* Escape sequence. */
        p->pos++;
        if (p->pos >= p->len) {
            p->err = "unterminated escape";
            return 0;
        }
        c = (unsigned char)p->s[p->pos++];
        switch (c) {
            case '"': buf_putc(out, '"'); break;
            case '\\': buf_putc(out, '\\'); break;
            case '/': buf_putc(out, '/'); break;
            case 'b': buf_putc(out, '\b'); break;
            case 'f': buf_putc(out, '\f'); break;
            case 'n': buf_putc(out, '\n'); break;
            case 'r': buf_putc(out, '\r'); break;
            case 't': buf_putc(out, '\t'); break;
            case 'u': {
                long cp = jp_hex4(p);
                if (cp < 0) {
                    p->err = "bad \\u escape";
                    return 0;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    /* High surrogate: combine with a following low one. */
                    size_t save = p->pos;
                    long lo = -1;
                    if (p->len - p->pos >= 6 && p->s[p->pos] == '\\' &&
                            p->s[p->pos + 1] == 'u') {
                        p->pos += 2;
                        lo = jp_hex4(p);
                    }
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else {
                        /* Lone high surrogate: not representable in UTF-8. */
                        p->pos = save;
                        cp = 0xFFFD;
                    }
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    cp = 0xFFFD;  /* lone low surrogate */
                }
                buf_put_utf8(out, (unsigned long)cp);
                break;
            }
            default:
                p->err = "bad escape";
                return 0;
        }
    }
    p->err = "unterminated string";
    return 0;
}

static int jp_number(JParser *p, JVal *v)
{
    size_t start = p->pos;
    size_t n;
    if (p->pos < p->len && p->s[p->pos] == '-') p->pos++;
    if (p->pos >= p->len) goto bad;
    if (p->s[p->pos] == '0') {
        p->pos++;
    } else if (p->s[p->pos] >= '1' && p->s[p->pos] <= '9') {
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    } else {
        goto bad;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            goto bad;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            goto bad;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
    }
    n = p->pos - start;
    v->str = xmalloc(n + 1);
    memcpy(v->str, p->s + start, n);
    v->str[n] = '\0';
    v->len = n;
    return 1;
bad:
    p->err = "bad number";
    return 0;
}

static JVal *jp_value(JParser *p, int depth);

static JVal *jp_container(JParser *p, int depth, int is_obj)
{
    JVal *v = jval_new(is_obj ? J_OBJ : J_ARR);
    size_t cap = 0;
    char close = is_obj ? '}' : ']';

    if (depth > JSON_MAX_DEPTH) {
        p->err = "nesting too deep";
        goto fail;
    }
    p->pos++;  /* opening bracket */
    jp_skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return v;
    }
    for (;;) {
        Buf key = {0};
        JVal *item;
        if (is_obj) {
            jp_skip_ws(p);
            if (!jp_string(p, &key)) {
                buf_free(&key);
                goto fail;
            }
            jp_skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                p->err = "expected ':'";
                buf_free(&key);
                goto fail;
            }
            p->pos++;
        }
        item = jp_value(p, depth + 1);
        if (!item) {
            buf_free(&key);
            goto fail;
        }
        if (v->n == cap) {
            cap = cap ? cap * 2 : 4;
            v->items = xrealloc(v->items, cap * sizeof(*v->items));
            if (is_obj) {
                v->keys = xrealloc(v->keys, cap * sizeof(*v->keys));
                v->keylens = xrealloc(v->keylens, cap * sizeof(*v->keylens));
            }
        }
        v->items[v->n] = item;
        if (is_obj) {
            v->keys[v->n] = key.p;
            v->keylens[v->n] = key.len;
        }
        v->n++;
        jp_skip_ws(p);
        if (p->pos >= p->len) {
            p->err = "unterminated container";
            goto fail;
        }
        if (p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->s[p->pos] == close) {
            p->pos++;
            return v;
        }
        p->err = is_obj ? "expected ',' or '}'" : "expected ',' or ']'";
        goto fail;
    }
fail:
    jval_free(v);
    return NULL;
}

static JVal *jp_value(JParser *p, int depth)
{
    JVal *v;
    jp_skip_ws(p);
    if (p->pos >= p->len) {
        p->err = "unexpected end of input";
        return NULL;
    }
    switch (p->s[p->pos]) {
        case '{':
            return jp_container(p, depth, 1);
        case '[':
            return jp_container(p, depth, 0);
        case '"': {
            Buf b = {0};
            if (!jp_string(p, &b)) {
                buf_free(&b);
                return NULL;
            }
            v = jval_new(J_STR);
            v->str = b.p;
            v->len = b.len;
            return v;
        }
        case 't':
            if (jp_literal(p, "true")) {
                v = jval_new(J_BOOL);
                v->boolean = 1;
                return v;
            }
            break;
        case 'f':
            if (jp_literal(p, "false")) {
                v = jval_new(J_BOOL);
                v->boolean = 0;
                return v;
            }
            break;
        case 'n':
            if (jp_literal(p, "null")) return jval_new(J_NULL);
            break;
        default:
            if (p->s[p->pos] == '-' ||
                    (p->s[p->pos] >= '0' && p->s[p->pos] <= '9')) {
                v = jval_new(J_NUM);
                if (jp_number(p, v)) return v;
                jval_free(v);
                return NULL;
            }
            break;
    }
    p->err = "unexpected character";
    return NULL;
}

/* Parses one complete JSON document; returns NULL and sets *err on error. */
static JVal *json_parse(const char *s, size_t len, const char **err)
{
    JParser p;
    JVal *v;
    p.s = s;
    p.len = len;
    p.pos = 0;
    p.err = NULL;
    v = jp_value(&p, 0);
    if (v) {
        jp_skip_ws(&p);
        if (p.pos != p.len) {
            jval_free(v);
            v = NULL;
            p.err = "trailing data after JSON value";
        }
    }
    if (!v && err) *err = p.err ? p.err : "invalid JSON";
    return v;
}

static const JVal *jobj_get(const JVal *obj, const char *key)
{
    size_t i, klen = strlen(key);
    if (!obj || obj->type != J_OBJ) return NULL;
    /* Last occurrence wins for duplicated names. */
    for (i = obj->n; i > 0; i--) {
        if (obj->keylens[i - 1] == klen &&
                memcmp(obj->keys[i - 1], key, klen) == 0)
            return obj->items[i - 1];
    }
    return NULL;
}

/* Length of a valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        if (n >= 2 && (s[1] & 0xC0) == 0x80) return 2;
        return 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;  /* no UTF-16 surrogates */
        if (n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80)
            return 3;
        return 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
        if (n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 &&
                (s[3] & 0xC0) == 0x80)
            return 4;
        return 0;
    }
    return 0;
}

/* Appends s (n bytes) as a JSON string literal.  Bytes that are not valid
 * UTF-8 become U+FFFD, so the output is always valid JSON text. */
static void buf_json_str(Buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    buf_putc(b, '"');
    while (i < n) {
        unsigned char c = u[i];
        size_t sl;
        if (c == '"') {
            buf_puts(b, "\\\"");
            i++;
        } else if (c == '\\') {
            buf_puts(b, "\\\\");
            i++;
        } else if (c < 0x20) {
            char tmp[8];
            switch (c) {
                case '\n': buf_puts(b, "\\n"); break;
                case '\r': buf_puts(b, "\\r"); break;
                case '\t': buf_puts(b, "\\t"); break;
                case '\b': buf_puts(b, "\\b"); break;
                case '\f': buf_puts(b, "\\f"); break;
                default:
                    snprintf(tmp, sizeof(tmp), "\\u%04x", c);
                    buf_puts(b, tmp);
                    break;
            }
            i++;
        } else if (c < 0x80) {
            buf_putc(b, (char)c);
            i++;
        } else if ((sl = utf8_seq_len(u + i, n - i)) > 0) {
            buf_putn(b, s + i, sl);
            i += sl;
        } else {
            buf_puts(b, "\\ufffd");
            i++;
        }
    }
    buf_putc(b, '"');
}

static void buf_json_cstr(Buf *b, const char *s)
{
    if (s) buf_json_str(b, s, strlen(s));
    else buf_puts(b, "null");
}

static void buf_json_value(Buf *b, const JVal *v)
{
    size_t i;
    if (!v) {
        buf_puts(b, "null");
        return;
    }
    switch (v->type) {
        case J_NULL: buf_puts(b, "null"); break;
        case J_BOOL: buf_puts(b, v->boolean ? "true" : "false"); break;
        case J_NUM: buf_putn(b, v->str, v->len); break;
        case J_STR: buf_json_str(b, v->str, v->len); break;
        case J_ARR:
            buf_putc(b, '[');
            for (i = 0; i < v->n; i++) {
                if (i) buf_putc(b, ',');
                buf_json_value(b, v->items[i]);
            }
            buf_putc(b, ']');
            break;
        case J_OBJ:
            buf_putc(b, '{');
            for (i = 0; i < v->n; i++) {
                if (i) buf_putc(b, ',');
                buf_json_str(b, v->keys[i], v->keylens[i]);
                buf_putc(b, ':');
                buf_json_value(b, v->items[i]);
            }
            buf_putc(b, '}');
            break;
    }
}

/* ------------------------------------------------------------------ */
/* Event output                                                         */
/* ------------------------------------------------------------------ */

/* Writes one finished event line to stdout and flushes. */
static void emit_line(Buf *b)
{
    buf_putc(b, '\n');
    if (fwrite(b->p, 1, b->len, stdout) != b->len || fflush(stdout) != 0) {
        logmsg("cannot write to stdout: %s", strerror(errno));
        exit(1);
    }
    buf_free(b);
}

static void ev_begin(Buf *b, const char *ev)
{
    buf_puts(b, "{\"ev\":");
    buf_json_cstr(b, ev);
}

static void emit_simple(const char *ev, const char *text)
{
    Buf b = {0};
    ev_begin(&b, ev);
    buf_puts(&b, ",\"text\":");
    buf_json_cstr(&b, text);
    buf_putc(&b, '}');
    emit_line(&b);
}

static void emit_error(const char *fmt, ...)
{
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&text, fmt, ap) < 0) die_oom();
    va_end(ap);
    emit_simple("error", text);
    free(text);
}

static void emit_log(const char *fmt, ...)
{
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&text, fmt, ap) < 0) die_oom();
    va_end(ap);
    emit_simple("log", text);
    free(text);
}

static void emit_wire(const char *data)
{
    Buf b = {0};
    if (!data || !*data) return;  /* never send empty network messages */
    ev_begin(&b, "wire");
    buf_puts(&b, ",\"data\":");
    buf_json_cstr(&b, data);
    buf_putc(&b, '}');
    emit_line(&b);
}

static void emit_message(const char *text, int encrypted)
{
    Buf b = {0};
    ev_begin(&b, "message");
    buf_puts(&b, ",\"text\":");
    buf_json_cstr(&b, text);
    buf_puts(&b, encrypted ? ",\"encrypted\":true}" : ",\"encrypted\":false}");
    emit_line(&b);
}

static void emit_state(const char *state)
{
    Buf b = {0};
    ev_begin(&b, "state");
    buf_puts(&b, ",\"state\":");
    buf_json_cstr(&b, state);
    buf_putc(&b, '}');
    emit_line(&b);
}

static void emit_smp_result(const char *result)
{
    Buf b = {0};
    ev_begin(&b, "smp");
    buf_puts(&b, ",\"result\":");
    buf_json_cstr(&b, result);
    buf_putc(&b, '}');
    emit_line(&b);
}

static void emit_smp_asked(const char *question)
{
    Buf b = {0};
    ev_begin(&b, "smp");
    buf_puts(&b, ",\"state\":\"asked\",\"question\":");
    buf_json_cstr(&b, question);
    buf_putc(&b, '}');
    emit_line(&b);
}

static void emit_done(const JVal *id)
{
    Buf b = {0};
    ev_begin(&b, "done");
    buf_puts(&b, ",\"id\":");
    buf_json_value(&b, id);
    buf_putc(&b, '}');
    emit_line(&b);
}

/* ------------------------------------------------------------------ */
/* Peer state                                                           */
/* ------------------------------------------------------------------ */

typedef struct {
    OtrlUserState us;
    const char *account;
    const char *peer;
    const char *protocol;
    const char *keyfile;
    OtrlPolicy policy;
    int max_fragment;           /* 0 = unlimited */
    unsigned int forced_instag; /* 0 = random */

    OtrlMessageState reported;  /* last state announced with a state event */

    int decrypted;              /* set by convert_msg while receiving */

    /* Details of the most recently completed AKE, kept because libotr
     * wipes them from the context when the session ends. */
    int have_session;
    unsigned char last_fp[20];
    unsigned int last_version;

    /* SMP bookkeeping. */
    ConnContext *smp_asked;     /* context waiting for our secret */
    ConnContext *smp_to_abort;  /* context where the library asked us to
                                   abort after an error / cheating */

    unsigned int timer_interval;
} Peer;

static Peer P;

static const char *state_name(OtrlMessageState s)
{
    switch (s) {
        case OTRL_MSGSTATE_PLAINTEXT: return "plaintext";
        case OTRL_MSGSTATE_ENCRYPTED: return "encrypted";
        case OTRL_MSGSTATE_FINISHED: return "finished";
    }
    return "plaintext";
}

static ConnContext *master_context(void)
{
    return otrl_context_find(P.us, P.peer, P.account, P.protocol,
            OTRL_INSTAG_MASTER, 1, NULL, NULL, NULL);
}

/* The instance libotr would send to. */
static ConnContext *best_context(void)
{
    ConnContext *c = otrl_context_find(P.us, P.peer, P.account, P.protocol,
            OTRL_INSTAG_BEST, 0, NULL, NULL, NULL);
    return c ? c : master_context();
}

/* Announces a change of the conversation's message state, if any. */
static void check_state(void)
{
    ConnContext *c = best_context();
    OtrlMessageState s = c ? c->msgstate : OTRL_MSGSTATE_PLAINTEXT;
    if (s != P.reported) {
        P.reported = s;
        emit_state(state_name(s));
    }
}

static void hex_upper(char *out, const unsigned char *in, size_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0F];
    }
    out[2 * n] = '\0';
}

/* ------------------------------------------------------------------ */
/* Fragmentation                                                        */
/* ------------------------------------------------------------------ */

/* Sends an OTR message produced outside libotr's own fragmenting path,
 * splitting encoded messages that exceed --max-fragment with libotr's
 * fragment builder (the same computation libotr uses internally). */
static void send_with_context(ConnContext *ctx, const char *msg)
{
    size_t msglen;
    int mms = P.max_fragment;

    if (!msg || !*msg) return;
    msglen = strlen(msg);
    if (ctx && mms > 0 && strncmp(msg, "?OTR:", 5) == 0 &&
            msglen > (size_t)mms) {
        int headerlen = ctx->protocol_version == 3 ? 37 : 19;
        size_t count = (msglen - 1) / (size_t)(mms - headerlen) + 1;
        char **frags = NULL;
        gcry_error_t err;
        size_t i;

        if (count <= 65535) {
            err = otrl_proto_fragment_create(mms, (int)count, &frags, ctx, msg);
            if (!err && frags) {
                for (i = 0; i < count; i++) emit_wire(frags[i]);
                otrl_proto_fragment_free(&frags, (unsigned short)count);
                return;
            }
            emit_error("could not fragment message: %s", gcry_strerror(err));
        } else {
            emit_error("message too long to fragment (%zu fragments)", count);
        }
        return;
    }
    emit_wire(msg);
}

/* Fragmenter for encoded messages that libotr injects directly, bypassing
 * its own fragmentation (disconnect notices, heartbeats).  The protocol
 * version and instance tags are read from the message header. */
static void send_injected(const char *msg)
{
    size_t msglen = strlen(msg);
    int mms = P.max_fragment;
    unsigned char hdr[12];
    size_t got;
    unsigned int version, sender = 0, receiver = 0;
    size_t overhead, piece, count, i, off;

    if (mms <= 0 || strncmp(msg, "?OTR:", 5) != 0 || msglen <= (size_t)mms ||
            msglen < 5 + 16) {
        emit_wire(msg);
        return;
    }
    got = otrl_base64_decode(hdr, msg + 5, 16);
    if (got < 3) {
        emit_wire(msg);
        return;
    }
    version = ((unsigned int)hdr[0] << 8) | hdr[1];
    if (version == 3) {
        if (got < 11) {
            emit_wire(msg);
            return;
        }
        sender = ((unsigned int)hdr[3] << 24) | ((unsigned int)hdr[4] << 16) |
                ((unsigned int)hdr[5] << 8) | hdr[6];
        receiver = ((unsigned int)hdr[7] << 24) | ((unsigned int)hdr[8] << 16) |
                ((unsigned int)hdr[9] << 8) | hdr[10];
        overhead = 36;  /* "?OTR|xxxxxxxx|xxxxxxxx,kkkkk,nnnnn," + "," */
    } else {
        overhead = 18;  /* "?OTR,kkkkk,nnnnn," + "," */
    }
    piece = (size_t)mms - overhead;
    count = (msglen - 1) / piece + 1;
    if (count > 65535) {
        emit_error("message too long to fragment (%zu fragments)", count);
        return;
    }
    for (i = 0, off = 0; i < count; i++) {
        size_t take = msglen - off < piece ? msglen - off : piece;
        char *frag = NULL;
        int r;
        if (version == 3) {
            r = asprintf(&frag, "?OTR|%08x|%08x,%05zu,%05zu,%.*s,", sender,
                    receiver, i + 1, count, (int)take, msg + off);
        } else {
            r = asprintf(&frag, "?OTR,%05zu,%05zu,%.*s,", i + 1, count,
                    (int)take, msg + off);
        }
        if (r < 0) die_oom();
        emit_wire(frag);
        free(frag);
        off += take;
    }
}

/* ------------------------------------------------------------------ */
/* libotr callbacks                                                     */
/* ------------------------------------------------------------------ */

static OtrlPolicy op_policy(void *opdata, ConnContext *context)
{
    (void)opdata;
    (void)context;
    return P.policy;
}

static void generate_key(const char *accountname, const char *protocol);

static void op_create_privkey(void *opdata, const char *accountname,
        const char *protocol)
{
    (void)opdata;
    generate_key(accountname, protocol);
}

static int op_is_logged_in(void *opdata, const char *accountname,
        const char *protocol, const char *recipient)
{
    (void)opdata;
    (void)accountname;
    (void)protocol;
    (void)recipient;
    return 1;
}

static void op_inject_message(void *opdata, const char *accountname,
        const char *protocol, const char *recipient, const char *message)
{
    (void)opdata;
    (void)accountname;
    (void)protocol;
    (void)recipient;
    if (message) send_injected(message);
}

static void op_update_context_list(void *opdata)
{
    (void)opdata;
}

static void op_new_fingerprint(void *opdata, OtrlUserState us,
        const char *accountname, const char *protocol, const char *username,
        unsigned char fingerprint[20])
{
    char hex[41];
    (void)opdata;
    (void)us;
    (void)accountname;
    (void)protocol;
    hex_upper(hex, fingerprint, 20);
    logmsg("new fingerprint for %s: %s", username, hex);
}

static void op_write_fingerprints(void *opdata)
{
    (void)opdata;  /* trust is kept in memory only */
}

static void session_established(ConnContext *context)
{
    if (context->active_fingerprint && context->active_fingerprint->fingerprint) {
        memcpy(P.last_fp, context->active_fingerprint->fingerprint, 20);
        P.have_session = 1;
    }
    P.last_version = context->protocol_version;
    if (P.smp_asked == context) P.smp_asked = NULL;
    P.reported = OTRL_MSGSTATE_ENCRYPTED;
    emit_state("encrypted");
}

static void op_gone_secure(void *opdata, ConnContext *context)
{
    (void)opdata;
    session_established(context);
}

static void op_gone_insecure(void *opdata, ConnContext *context)
{
    (void)opdata;
    (void)context;
    check_state();
}

static void op_still_secure(void *opdata, ConnContext *context, int is_reply)
{
    (void)opdata;
    (void)is_reply;
    session_established(context);
}

static int op_max_message_size(void *opdata, ConnContext *context)
{
    (void)opdata;
    (void)context;
    return P.max_fragment;
}

static void op_received_symkey(void *opdata, ConnContext *context,
        unsigned int use, const unsigned char *usedata, size_t usedatalen,
        const unsigned char *symkey)
{
    char keyhex[OTRL_EXTRAKEY_BYTES * 2 + 1];
    char *datahex = malloc(usedatalen * 2 + 1);
    size_t i;

    (void)opdata;
    (void)context;
    for (i = 0; i < OTRL_EXTRAKEY_BYTES; i++)
        snprintf(keyhex + 2 * i, 3, "%02X", symkey[i]);
    if (!datahex) return;
    for (i = 0; i < usedatalen; i++)
        snprintf(datahex + 2 * i, 3, "%02X", usedata[i]);
    datahex[2 * usedatalen] = '\0';
    /* Extension of the peer protocol (tests only): report the key so a test
     * can compare both ends. */
    emit_log("symkey received use=%u data=%s key=%s", use, datahex, keyhex);
    free(datahex);
}

static const char *op_otr_error_message(void *opdata, ConnContext *context,
        OtrlErrorCode code)
{
    (void)opdata;
    (void)context;
    switch (code) {
        case OTRL_ERRCODE_ENCRYPTION_ERROR:
            return "An error occurred while encrypting a message.";
        case OTRL_ERRCODE_MSG_NOT_IN_PRIVATE:
            return "You sent encrypted data to a peer who was not expecting it.";
        case OTRL_ERRCODE_MSG_UNREADABLE:
            return "You transmitted an unreadable encrypted message.";
        case OTRL_ERRCODE_MSG_MALFORMED:
            return "You transmitted a malformed data message.";
        case OTRL_ERRCODE_NONE:
            break;
    }
    return "Unknown error.";
}

static void op_otr_error_message_free(void *opdata, const char *msg)
{
    (void)opdata;
    (void)msg;  /* static strings */
}

static void op_handle_smp_event(void *opdata, OtrlSMPEvent event,
        ConnContext *context, unsigned short progress, char *question)
{
    (void)opdata;
    (void)progress;
    switch (event) {
        case OTRL_SMPEVENT_ASK_FOR_SECRET:
            P.smp_asked = context;
            emit_smp_asked(NULL);
            break;
        case OTRL_SMPEVENT_ASK_FOR_ANSWER:
            P.smp_asked = context;
            emit_smp_asked(question ? question : "");
            break;
        case OTRL_SMPEVENT_SUCCESS:
            if (P.smp_asked == context) P.smp_asked = NULL;
            emit_smp_result("success");
            break;
        case OTRL_SMPEVENT_FAILURE:
            if (P.smp_asked == context) P.smp_asked = NULL;
            emit_smp_result("failure");
            break;
        case OTRL_SMPEVENT_ABORT:
            if (P.smp_asked == context) P.smp_asked = NULL;
            emit_smp_result("aborted");
            break;
        case OTRL_SMPEVENT_CHEATED:
        case OTRL_SMPEVENT_ERROR:
            /* The library expects the application to abort the exchange;
             * do it once otrl_message_receiving has returned. */
            if (P.smp_asked == context) P.smp_asked = NULL;
            P.smp_to_abort = context;
            emit_smp_result("error");
            break;
        case OTRL_SMPEVENT_IN_PROGRESS:
        case OTRL_SMPEVENT_NONE:
            break;
    }
}

static void op_handle_msg_event(void *opdata, OtrlMessageEvent event,
        ConnContext *context, const char *message, gcry_error_t err)
{
    (void)opdata;
    (void)context;
    switch (event) {
        case OTRL_MSGEVENT_NONE:
            break;
        case OTRL_MSGEVENT_ENCRYPTION_REQUIRED:
            emit_error("encryption required: the message was not sent in "
                    "the clear; an OTR query was sent instead");
            break;
        case OTRL_MSGEVENT_ENCRYPTION_ERROR:
            emit_error("error while encrypting the message; it was not sent");
            break;
        case OTRL_MSGEVENT_CONNECTION_ENDED:
            emit_error("message not sent: the peer has ended the private "
                    "conversation (end or restart it)");
            break;
        case OTRL_MSGEVENT_SETUP_ERROR:
            emit_error("error setting up the private conversation: %s",
                    gcry_strerror(err));
            break;
        case OTRL_MSGEVENT_MSG_REFLECTED:
            emit_error("received our own OTR message back (reflected)");
            break;
        case OTRL_MSGEVENT_MSG_RESENT:
            emit_log("the last message was resent");
            break;
        case OTRL_MSGEVENT_RCVDMSG_NOT_IN_PRIVATE:
            emit_error("received an encrypted message that cannot be read: "
                    "no private conversation is established");
            break;
        case OTRL_MSGEVENT_RCVDMSG_UNREADABLE:
            emit_error("received an unreadable encrypted message");
            break;
        case OTRL_MSGEVENT_RCVDMSG_MALFORMED:
            emit_error("received a malformed message");
            break;
        case OTRL_MSGEVENT_LOG_HEARTBEAT_RCVD:
            /* libotr also reports every SMP message (empty text plus TLVs)
             * this way; not worth an event. */
            break;
        case OTRL_MSGEVENT_LOG_HEARTBEAT_SENT:
            emit_log("sent a heartbeat");
            break;
        case OTRL_MSGEVENT_RCVDMSG_GENERAL_ERR:
            emit_error("received an OTR error message: %s",
                    message ? message : "");
            break;
        case OTRL_MSGEVENT_RCVDMSG_UNENCRYPTED:
            /* libotr suppresses the message itself; show it with a warning
             * as the spec asks. */
            emit_error("the following message was received unencrypted");
            if (message && *message) emit_message(message, 0);
            break;
        case OTRL_MSGEVENT_RCVDMSG_UNRECOGNIZED:
            emit_error("received an unrecognized OTR message");
            break;
        case OTRL_MSGEVENT_RCVDMSG_FOR_OTHER_INSTANCE:
            emit_error("received a message meant for another instance");
            break;
    }
}

static void op_create_instag(void *opdata, const char *accountname,
        const char *protocol)
{
    FILE *sink = fopen("/dev/null", "w");
    (void)opdata;
    otrl_instag_generate_FILEp(P.us, sink, accountname, protocol);
    if (sink) fclose(sink);
}

static void op_convert_msg(void *opdata, ConnContext *context,
        OtrlConvertType type, char **dest, const char *src)
{
    (void)opdata;
    (void)context;
    (void)src;
    /* No conversion; we only use the hook to learn that a received
     * message came out of a decrypted Data message. */
    if (type == OTRL_CONVERT_RECEIVING) P.decrypted = 1;
    *dest = NULL;
}

static void op_convert_free(void *opdata, ConnContext *context, char *dest)
{
    (void)opdata;
    (void)context;
    free(dest);
}

static void op_timer_control(void *opdata, unsigned int interval)
{
    (void)opdata;
    /* Only recorded; otrl_message_poll expires stale AKE keys after a
     * minute, which never matters within a test. */
    P.timer_interval = interval;
}

static OtrlMessageAppOps OPS;

static void init_ops(void)
{
    memset(&OPS, 0, sizeof(OPS));
    OPS.policy = op_policy;
    OPS.create_privkey = op_create_privkey;
    OPS.is_logged_in = op_is_logged_in;
    OPS.inject_message = op_inject_message;
    OPS.update_context_list = op_update_context_list;
    OPS.new_fingerprint = op_new_fingerprint;
    OPS.write_fingerprints = op_write_fingerprints;
    OPS.gone_secure = op_gone_secure;
    OPS.gone_insecure = op_gone_insecure;
    OPS.still_secure = op_still_secure;
    OPS.max_message_size = op_max_message_size;
    OPS.account_name = NULL;
    OPS.account_name_free = NULL;
    OPS.received_symkey = op_received_symkey;
    OPS.otr_error_message = op_otr_error_message;
    OPS.otr_error_message_free = op_otr_error_message_free;
    OPS.resent_msg_prefix = NULL;
    OPS.resent_msg_prefix_free = NULL;
    OPS.handle_smp_event = op_handle_smp_event;
    OPS.handle_msg_event = op_handle_msg_event;
    OPS.create_instag = op_create_instag;
    OPS.convert_msg = op_convert_msg;
    OPS.convert_free = op_convert_free;
    OPS.timer_control = op_timer_control;
}

/* ------------------------------------------------------------------ */
/* Keys and instance tags                                               */
/* ------------------------------------------------------------------ */

static void generate_key(const char *accountname, const char *protocol)
{
    gcry_error_t err;
    if (P.keyfile) {
        err = otrl_privkey_generate(P.us, P.keyfile, accountname, protocol);
    } else {
        FILE *tmp = tmpfile();
        if (!tmp) {
            logmsg("cannot create a temporary key file: %s", strerror(errno));
            exit(1);
        }
        err = otrl_privkey_generate_FILEp(P.us, tmp, accountname, protocol);
        fclose(tmp);
    }
    if (err) {
        logmsg("key generation failed: %s", gcry_strerror(err));
        exit(1);
    }
}

static void load_or_create_key(void)
{
    struct stat st;
    if (P.keyfile && stat(P.keyfile, &st) == 0 && st.st_size > 0) {
        gcry_error_t err = otrl_privkey_read(P.us, P.keyfile);
        if (err) {
            logmsg("cannot read key file %s: %s", P.keyfile,
                    gcry_strerror(err));
            exit(1);
        }
    }
    if (!otrl_privkey_find(P.us, P.account, P.protocol)) {
        generate_key(P.account, P.protocol);
    }
    if (!otrl_privkey_find(P.us, P.account, P.protocol)) {
        logmsg("no private key available for %s/%s", P.account, P.protocol);
        exit(1);
    }
}

static void setup_instag(void)
{
    OtrlInsTag *tag;
    FILE *sink = fopen("/dev/null", "w");
    gcry_error_t err;
    if (!sink) {
        logmsg("cannot open /dev/null: %s", strerror(errno));
        exit(1);
    }
    err = otrl_instag_generate_FILEp(P.us, sink, P.account, P.protocol);
    fclose(sink);
    tag = otrl_instag_find(P.us, P.account, P.protocol);
    if (err || !tag) {
        logmsg("cannot create an instance tag");
        exit(1);
    }
    if (P.forced_instag) tag->instag = P.forced_instag;
}

/* ------------------------------------------------------------------ */
/* Commands                                                             */
/* ------------------------------------------------------------------ */

/* Returns the string member `key` as a NUL-terminated C string, or NULL if
 * missing or not a string.  Text after an embedded NUL is dropped (libotr
 * works on C strings); *truncated reports that. */
static const char *get_str(const JVal *cmd, const char *key, int *truncated)
{
    const JVal *v = jobj_get(cmd, key);
    if (!v || v->type != J_STR) return NULL;
    if (truncated) *truncated = strlen(v->str) != v->len;
    return v->str;
}

static void cmd_send(const JVal *cmd)
{
    int trunc = 0;
    const char *text = get_str(cmd, "text", &trunc);
    char *out = NULL;
    ConnContext *ctx = NULL;
    gcry_error_t err;

    if (!text) {
        emit_error("send: missing string member \"text\"");
        return;
    }
    if (trunc) emit_log("send: text cut at an embedded NUL character");
    if (!*text) {
        emit_error("send: empty message");
        return;
    }
    err = otrl_message_sending(P.us, &OPS, NULL, P.account, P.protocol,
            P.peer, OTRL_INSTAG_BEST, text, NULL, &out, OTRL_FRAGMENT_SEND_SKIP,
            &ctx, NULL, NULL);
    if (err) {
        emit_error("message not sent: %s", gcry_strerror(err));
        otrl_message_free(out);
        return;
    }
    if (!out) {
        /* Ordinary plaintext, unchanged. */
        emit_wire(text);
    } else {
        /* Replacement text: encrypted message, tagged plaintext, query or
         * nothing at all (empty string). */
        send_with_context(ctx, out);
    }
    otrl_message_free(out);
}

static void cmd_recv(const JVal *cmd)
{
    int trunc = 0;
    const char *data = get_str(cmd, "data", &trunc);
    char *newmsg = NULL;
    OtrlTLV *tlvs = NULL;
    ConnContext *ctx = NULL;
    int ignore;

    if (!data) {
        emit_error("recv: missing string member \"data\"");
        return;
    }
    if (trunc) emit_log("recv: data cut at an embedded NUL character");

    P.decrypted = 0;
    P.smp_to_abort = NULL;
    ignore = otrl_message_receiving(P.us, &OPS, NULL, P.account, P.protocol,
            P.peer, data, &newmsg, &tlvs, &ctx, NULL, NULL);
    if (!ignore) {
        const char *shown = newmsg ? newmsg : data;
        if (*shown) emit_message(shown, newmsg != NULL && P.decrypted);
    }
    otrl_message_free(newmsg);
    otrl_tlv_free(tlvs);
    P.decrypted = 0;

    if (P.smp_to_abort) {
        ConnContext *c = P.smp_to_abort;
        P.smp_to_abort = NULL;
        if (c->msgstate == OTRL_MSGSTATE_ENCRYPTED) {
            otrl_message_abort_smp(P.us, &OPS, NULL, c);
        }
    }
}

static void cmd_start(void)
{
    ConnContext *ctx = best_context();
    char *query;
    if ((P.policy & OTRL_POLICY_VERSION_MASK) == 0) {
        emit_error("start: the policy allows no OTR version");
        return;
    }
    query = otrl_proto_default_query_msg(P.account, P.policy);
    if (!query) die_oom();
    if (ctx) ctx->otr_offer = OFFER_SENT;
    emit_wire(query);  /* query messages are never fragmented */
    free(query);
}

static void cmd_end(void)
{
    otrl_message_disconnect_all_instances(P.us, &OPS, NULL, P.account,
            P.protocol, P.peer);
    P.smp_asked = NULL;
}

static ConnContext *encrypted_context(const char *what)
{
    ConnContext *ctx = best_context();
    if (!ctx || ctx->msgstate != OTRL_MSGSTATE_ENCRYPTED ||
            !ctx->active_fingerprint) {
        emit_error("%s: no encrypted session", what);
        return NULL;
    }
    return ctx;
}

static void cmd_smp(const JVal *cmd)
{
    const JVal *secret = jobj_get(cmd, "secret");
    const JVal *question = jobj_get(cmd, "question");
    ConnContext *ctx;

    if (!secret || secret->type != J_STR) {
        emit_error("smp: missing string member \"secret\"");
        return;
    }
    if (question && question->type != J_STR && question->type != J_NULL) {
        emit_error("smp: \"question\" must be a string");
        return;
    }
    ctx = encrypted_context("smp");
    if (!ctx) return;
    if (P.smp_asked == ctx) P.smp_asked = NULL;
    if (question && question->type == J_STR) {
        otrl_message_initiate_smp_q(P.us, &OPS, NULL, ctx, question->str,
                (const unsigned char *)secret->str, secret->len);
    } else {
        otrl_message_initiate_smp(P.us, &OPS, NULL, ctx,
                (const unsigned char *)secret->str, secret->len);
    }
}

static void cmd_smp_respond(const JVal *cmd)
{
    const JVal *secret = jobj_get(cmd, "secret");
    ConnContext *ctx;

    if (!secret || secret->type != J_STR) {
        emit_error("smp_respond: missing string member \"secret\"");
        return;
    }
    ctx = encrypted_context("smp_respond");
    if (!ctx) return;
    /* Answering without a pending request would make libotr compute with
     * an uninitialised SMP state; refuse instead. */
    if (P.smp_asked != ctx || !ctx->smstate ||
            ctx->smstate->nextExpected != OTRL_SMP_EXPECT1 ||
            ctx->smstate->x2 == NULL || ctx->smstate->g3o == NULL) {
        emit_error("smp_respond: no SMP request is waiting for an answer");
        return;
    }
    P.smp_asked = NULL;
    otrl_message_respond_smp(P.us, &OPS, NULL, ctx,
            (const unsigned char *)secret->str, secret->len);
}

static void cmd_smp_abort(void)
{
    ConnContext *ctx = best_context();
    P.smp_asked = NULL;
    if (!ctx || ctx->msgstate != OTRL_MSGSTATE_ENCRYPTED) {
        emit_log("smp_abort: no encrypted session, nothing sent");
        if (ctx && ctx->smstate) ctx->smstate->nextExpected = OTRL_SMP_EXPECT1;
        return;
    }
    otrl_message_abort_smp(P.us, &OPS, NULL, ctx);
}

/* Extension command {"op":"x-symkey","use":N,"data":S}: announce use N of the
 * extra symmetric key (TLV 8) with use data S, and report the key as a log
 * event "symkey sent use=N key=HEX". */
static void cmd_symkey(const JVal *cmd)
{
    const JVal *use = jobj_get(cmd, "use");
    const JVal *data = jobj_get(cmd, "data");
    unsigned char key[OTRL_EXTRAKEY_BYTES];
    char keyhex[OTRL_EXTRAKEY_BYTES * 2 + 1];
    ConnContext *ctx;
    unsigned long usecode;
    size_t i;

    if (!use || use->type != J_NUM || !data || data->type != J_STR) {
        emit_error("x-symkey: needs a number \"use\" and a string \"data\"");
        return;
    }
    usecode = strtoul(use->str, NULL, 10);
    ctx = encrypted_context("x-symkey");
    if (!ctx) return;
    if (otrl_message_symkey(P.us, &OPS, NULL, ctx, (unsigned int)usecode,
            (const unsigned char *)data->str, data->len, key)) {
        emit_error("x-symkey: libotr refused");
        return;
    }
    for (i = 0; i < OTRL_EXTRAKEY_BYTES; i++)
        snprintf(keyhex + 2 * i, 3, "%02X", key[i]);
    emit_log("symkey sent use=%lu key=%s", usecode, keyhex);
}

static void cmd_status(void)
{
    ConnContext *ctx = best_context();
    ConnContext *master = master_context();
    OtrlMessageState st = ctx ? ctx->msgstate : OTRL_MSGSTATE_PLAINTEXT;
    unsigned char ourfp[20];
    char hex[41];
    const unsigned char *theirfp = NULL;
    Fingerprint *fp = NULL;
    unsigned int version = 0;
    Buf b = {0};

    ev_begin(&b, "status");
    buf_puts(&b, ",\"state\":");
    buf_json_cstr(&b, state_name(st));

    if (ctx && st == OTRL_MSGSTATE_ENCRYPTED && ctx->protocol_version)
        version = ctx->protocol_version;
    else if (P.have_session)
        version = P.last_version;
    buf_puts(&b, ",\"version\":");
    if (version) {
        char num[16];
        snprintf(num, sizeof(num), "%u", version);
        buf_puts(&b, num);
    } else {
        buf_puts(&b, "null");
    }

    buf_puts(&b, ",\"our_fingerprint\":");
    if (otrl_privkey_fingerprint_raw(P.us, ourfp, P.account, P.protocol)) {
        hex_upper(hex, ourfp, 20);
        buf_json_cstr(&b, hex);
    } else {
        buf_puts(&b, "null");
    }

    if (ctx && ctx->active_fingerprint && ctx->active_fingerprint->fingerprint) {
        fp = ctx->active_fingerprint;
        theirfp = fp->fingerprint;
    } else if (P.have_session) {
        theirfp = P.last_fp;
        if (master)
            fp = otrl_context_find_fingerprint(master, P.last_fp, 0, NULL);
    }
    buf_puts(&b, ",\"their_fingerprint\":");
    if (theirfp) {
        hex_upper(hex, theirfp, 20);
        buf_json_cstr(&b, hex);
    } else {
        buf_puts(&b, "null");
    }

    buf_puts(&b, ",\"trusted\":");
    buf_puts(&b, fp && otrl_context_is_fingerprint_trusted(fp) ? "true" : "false");

    buf_puts(&b, ",\"ssid\":");
    if (ctx && st == OTRL_MSGSTATE_ENCRYPTED && ctx->sessionid_len > 0) {
        size_t n = ctx->sessionid_len > 8 ? 8 : ctx->sessionid_len;
        hex_upper(hex, ctx->sessionid, n);
        buf_json_cstr(&b, hex);
    } else {
        buf_puts(&b, "null");
    }
    buf_putc(&b, '}');
    emit_line(&b);
}

/* Runs one command line; returns 0 when the peer should exit. */
static int handle_line(const char *line, size_t len)
{
    const char *perr = NULL;
    JVal *cmd = json_parse(line, len, &perr);
    const JVal *id = NULL;
    const JVal *opv;
    int keep_going = 1;

    if (!cmd) {
        emit_error("cannot parse command: %s", perr);
        emit_done(NULL);
        return 1;
    }
    if (cmd->type != J_OBJ) {
        emit_error("command must be a JSON object");
        emit_done(NULL);
        jval_free(cmd);
        return 1;
    }
    id = jobj_get(cmd, "id");
    opv = jobj_get(cmd, "op");
    if (!opv || opv->type != J_STR) {
        emit_error("command without string member \"op\"");
    } else if (strcmp(opv->str, "send") == 0) {
        cmd_send(cmd);
    } else if (strcmp(opv->str, "recv") == 0) {
        cmd_recv(cmd);
    } else if (strcmp(opv->str, "start") == 0) {
        cmd_start();
    } else if (strcmp(opv->str, "end") == 0) {
        cmd_end();
    } else if (strcmp(opv->str, "smp") == 0) {
        cmd_smp(cmd);
    } else if (strcmp(opv->str, "smp_respond") == 0) {
        cmd_smp_respond(cmd);
    } else if (strcmp(opv->str, "smp_abort") == 0) {
        cmd_smp_abort();
    } else if (strcmp(opv->str, "x-symkey") == 0) {
        cmd_symkey(cmd);
    } else if (strcmp(opv->str, "status") == 0) {
        cmd_status();
    } else if (strcmp(opv->str, "quit") == 0) {
        keep_going = 0;
    } else {
        Buf name = {0};
        buf_json_str(&name, opv->str, opv->len);
        emit_error("unknown op %s", name.p);
        buf_free(&name);
    }
    if (keep_going) check_state();
    emit_done(id);
    jval_free(cmd);
    return keep_going;
}

/* ------------------------------------------------------------------ */
/* Start-up                                                             */
/* ------------------------------------------------------------------ */

static void usage(const char *fmt, const char *arg)
{
    fputs("libotr_peer: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nusage: libotr_peer --account NAME --peer PEERNAME "
            "[--protocol PROTO] [--keyfile PATH]\n"
            "                   [--policy LIST] [--max-fragment N] "
            "[--instance-tag TAG]\n", stderr);
    exit(2);
}

static OtrlPolicy parse_policy(const char *list)
{
    OtrlPolicy policy = 0;
    char *copy = xstrdup(list);
    char *save = NULL;
    char *tok;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "v2") == 0) policy |= OTRL_POLICY_ALLOW_V2;
        else if (strcmp(tok, "v3") == 0) policy |= OTRL_POLICY_ALLOW_V3;
        else if (strcmp(tok, "whitespace") == 0)
            policy |= OTRL_POLICY_SEND_WHITESPACE_TAG;
        else if (strcmp(tok, "whitespace-start") == 0)
            policy |= OTRL_POLICY_WHITESPACE_START_AKE;
        else if (strcmp(tok, "error-start") == 0)
            policy |= OTRL_POLICY_ERROR_START_AKE;
        else if (strcmp(tok, "require") == 0)
            policy |= OTRL_POLICY_REQUIRE_ENCRYPTION;
        else {
            fprintf(stderr, "libotr_peer: unknown policy token \"%s\"\n", tok);
            free(copy);
            exit(2);
        }
    }
    free(copy);
    return policy;
}

static unsigned long parse_unsigned(const char *opt, const char *s, int allow_hex)
{
    char *end = NULL;
    unsigned long v;
    int base = 10;
    if (allow_hex && (strncmp(s, "0x", 2) == 0 || strncmp(s, "0X", 2) == 0)) {
        base = 16;
        s += 2;
    }
    if (!*s || *s == '-' || *s == '+' || *s == ' ') usage("bad value for %s", opt);
    errno = 0;
    v = strtoul(s, &end, base);
    if (errno || !end || *end) usage("bad value for %s", opt);
    return v;
}

int main(int argc, char **argv)
{
    const char *policy_str = "v2,v3";
    char *line = NULL;
    size_t linecap = 0;
    ssize_t n;
    int i;
    unsigned char fp[20];
    char fphex[41];
    Buf b = {0};

    memset(&P, 0, sizeof(P));
    P.protocol = "irc";
    P.reported = OTRL_MSGSTATE_PLAINTEXT;

    for (i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *val;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0)
            usage("%s", "help");
        if (i + 1 >= argc) usage("option %s needs a value", opt);
        val = argv[++i];
        if (strcmp(opt, "--account") == 0) P.account = val;
        else if (strcmp(opt, "--peer") == 0) P.peer = val;
        else if (strcmp(opt, "--protocol") == 0) P.protocol = val;
        else if (strcmp(opt, "--keyfile") == 0) P.keyfile = val;
        else if (strcmp(opt, "--policy") == 0) policy_str = val;
        else if (strcmp(opt, "--max-fragment") == 0) {
            unsigned long v = parse_unsigned(opt, val, 0);
            if (v != 0 && (v < 40 || v > 1000000))
                usage("--max-fragment must be 0 or between 40 and 1000000, "
                        "not %s", val);
            P.max_fragment = (int)v;
        } else if (strcmp(opt, "--instance-tag") == 0) {
            unsigned long v = parse_unsigned(opt, val, 1);
            if (v < OTRL_MIN_VALID_INSTAG || v > 0xFFFFFFFFUL)
                usage("--instance-tag must be between 0x100 and 0xffffffff, "
                        "not %s", val);
            P.forced_instag = (unsigned int)v;
        } else {
            usage("unknown option %s", opt);
        }
    }
    if (!P.account || !*P.account) usage("%s", "--account is required");
    if (!P.peer || !*P.peer) usage("%s", "--peer is required");
    if (!*P.protocol) usage("%s", "--protocol must not be empty");
    P.policy = parse_policy(policy_str);

    if (otrl_init(OTRL_VERSION_MAJOR, OTRL_VERSION_MINOR, OTRL_VERSION_SUB)) {
        logmsg("libotr initialisation failed (library version mismatch?)");
        return 1;
    }
    init_ops();
    P.us = otrl_userstate_create();
    if (!P.us) die_oom();

    load_or_create_key();
    setup_instag();
    (void)master_context();  /* create it now so it gets our instance tag */

    if (!otrl_privkey_fingerprint_raw(P.us, fp, P.account, P.protocol)) {
        logmsg("cannot compute our fingerprint");
        return 1;
    }
    hex_upper(fphex, fp, 20);
    {
        OtrlInsTag *tag = otrl_instag_find(P.us, P.account, P.protocol);
        logmsg("%s ready, instance tag %08x, fingerprint %s", P.account,
                tag ? tag->instag : 0, fphex);
    }

    ev_begin(&b, "ready");
    buf_puts(&b, ",\"impl\":");
    {
        char impl[64];
        snprintf(impl, sizeof(impl), "libotr %s", otrl_version());
        buf_json_cstr(&b, impl);
    }
    buf_puts(&b, ",\"versions\":[");
    if (P.policy & OTRL_POLICY_ALLOW_V2) {
        buf_puts(&b, "2");
        if (P.policy & OTRL_POLICY_ALLOW_V3) buf_putc(&b, ',');
    }
    if (P.policy & OTRL_POLICY_ALLOW_V3) buf_puts(&b, "3");
    buf_puts(&b, "],\"our_fingerprint\":");
    buf_json_cstr(&b, fphex);
    buf_putc(&b, '}');
    emit_line(&b);

    while ((n = getline(&line, &linecap, stdin)) >= 0) {
        size_t len = (size_t)n;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (len == 0) continue;  /* blank line: not a command */
        if (!handle_line(line, len)) break;
    }
    free(line);
    otrl_userstate_free(P.us);
    return 0;
}
