/*
 * Tokenizer and recursive-descent parser for protobuf text format. Grammar:
 *
 *   body   := { field [',' | ';'] }
 *   field  := ident ( ':' scalar | [':'] message | [':'] '[' [elem {',' elem}] ']' )
 *   message:= '{' body '}' | '<' body '>'
 *   elem   := message | scalar
 *   scalar := string {string} | ['-'] number | ['-'] ident
 *
 * Errors point at the token that did not fit, as "source:line:col: ...".
 */
#include "server/pbtxt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

typedef enum tok_kind { TOK_EOF, TOK_IDENT, TOK_STRING, TOK_NUMBER, TOK_PUNCT } tok_kind;

typedef struct token {
  tok_kind kind;
  const char *start; /* raw text in the input */
  size_t len;
  char punct;
  char *value; /* strings: unescaped, in the pool */
  size_t value_len;
  int line, column;
} token;

typedef struct parser {
  pbtxt_doc *doc;
  const char *p, *end;
  int line;
  const char *line_start;
  token tok; /* one token of lookahead */
  bool have_tok;
} parser;

static inferd_error *parse_error(const parser *ps, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static inferd_error *parse_error(const parser *ps, int line, int column, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return err_new(INFERD_ERROR_INVALID_ARG, "%s:%d:%d: %s", ps->doc->source, line, column, msg);
}

static bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_ident_char(char c) { return is_ident_start(c) || is_digit(c); }
static bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int hex_value(char c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

static void skip_space_and_comments(parser *ps) {
  while (ps->p < ps->end) {
    char c = *ps->p;
    if (c == '\n') {
      ps->p++;
      ps->line++;
      ps->line_start = ps->p;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
      ps->p++;
    } else if (c == '#') {
      while (ps->p < ps->end && *ps->p != '\n') ps->p++;
    } else {
      break;
    }
  }
}

/* Checks a number literal as protobuf's tokenizer would: hex, octal or
 * decimal integers, and floats with optional exponent and f suffix. */
static bool number_is_valid(const char *s, size_t n) {
  size_t i = 0;
  if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    if (n == 2) return false;
    for (i = 2; i < n; i++)
      if (!is_hex(s[i])) return false;
    return true;
  }
  size_t digits = 0;
  while (i < n && is_digit(s[i])) i++, digits++;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && is_digit(s[i])) i++, digits++;
  }
  if (digits == 0) return false;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    size_t exp_digits = 0;
    while (i < n && is_digit(s[i])) i++, exp_digits++;
    if (exp_digits == 0) return false;
  }
  if (i < n && (s[i] == 'f' || s[i] == 'F')) i++;
  return i == n;
}

/* Appends code point `cp` as UTF-8. */
static size_t put_utf8(char *out, unsigned long cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Lexes a quoted string starting at ps->p, unescaping into the pool. An
 * escape never produces more bytes than it is written with, so the raw
 * length bounds the output. NUL bytes are refused: every string of a model
 * configuration is a name or a path. */
static inferd_error *lex_string(parser *ps, token *t) {
  char quote = *ps->p;
  const char *s = ps->p + 1;
  const char *q = s;
  while (q < ps->end && *q != quote && *q != '\n') q += (*q == '\\' && q + 1 < ps->end && q[1] != '\n') ? 2 : 1;
  if (q >= ps->end || *q != quote) return parse_error(ps, t->line, t->column, "unterminated string");
  char *out = mem_pool_alloc(ps->doc->pool, (size_t)(q - s) + 1);
  size_t n = 0;
  for (const char *c = s; c < q;) {
    int col = (int)(c - ps->line_start) + 1;
    if (*c != '\\') {
      if (*c == '\0') return parse_error(ps, t->line, col, "strings may not contain NUL bytes");
      out[n++] = *c++;
      continue;
    }
    c++;
    char e = *c++;
    unsigned long v = 0;
    switch (e) {
      case 'n': out[n++] = '\n'; break;
      case 't': out[n++] = '\t'; break;
      case 'r': out[n++] = '\r'; break;
      case 'a': out[n++] = '\a'; break;
      case 'b': out[n++] = '\b'; break;
      case 'f': out[n++] = '\f'; break;
      case 'v': out[n++] = '\v'; break;
      case '\\': case '\'': case '"': case '?': out[n++] = e; break;
      case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
        v = (unsigned long)(e - '0');
        for (int k = 0; k < 2 && c < q && *c >= '0' && *c <= '7'; k++) v = v * 8 + (unsigned long)(*c++ - '0');
        if (v == 0) return parse_error(ps, t->line, col, "strings may not contain NUL bytes");
        if (v > 255) return parse_error(ps, t->line, col, "invalid octal escape in string");
        out[n++] = (char)v;
        break;
      case 'x': case 'X':
        if (c >= q || !is_hex(*c)) return parse_error(ps, t->line, col, "\\x escape needs hex digits");
        for (int k = 0; k < 2 && c < q && is_hex(*c); k++) v = v * 16 + (unsigned long)hex_value(*c++);
        if (v == 0) return parse_error(ps, t->line, col, "strings may not contain NUL bytes");
        out[n++] = (char)v;
        break;
      case 'u': case 'U': {
        int want = e == 'u' ? 4 : 8;
        for (int k = 0; k < want; k++) {
          if (c >= q || !is_hex(*c)) return parse_error(ps, t->line, col, "\\%c escape needs %d hex digits", e, want);
          v = v * 16 + (unsigned long)hex_value(*c++);
        }
        if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
          return parse_error(ps, t->line, col, "invalid unicode escape in string");
        n += put_utf8(out + n, v);
        break;
      }
      default:
        return parse_error(ps, t->line, col, "invalid escape '\\%c' in string", e);
    }
  }
  out[n] = 0;
  t->kind = TOK_STRING;
  t->value = out;
  t->value_len = n;
  ps->p = q + 1;
  return NULL;
}

static inferd_error *lex(parser *ps, token *t) {
  skip_space_and_comments(ps);
  *t = (token){.start = ps->p, .line = ps->line, .column = (int)(ps->p - ps->line_start) + 1};
  if (ps->p >= ps->end) {
    t->kind = TOK_EOF;
    return NULL;
  }
  char c = *ps->p;
  if (c == '"' || c == '\'') {
    ERR_TRY(lex_string(ps, t));
  } else if (is_ident_start(c)) {
    while (ps->p < ps->end && is_ident_char(*ps->p)) ps->p++;
    t->kind = TOK_IDENT;
  } else if (is_digit(c) || (c == '.' && ps->p + 1 < ps->end && is_digit(ps->p[1]))) {
    /* Greedy, then checked: "12abc" is one bad token, not 12 then abc. */
    const char *q = ps->p;
    bool hex = q + 1 < ps->end && q[0] == '0' && (q[1] == 'x' || q[1] == 'X');
    while (q < ps->end && (is_ident_char(*q) || *q == '.' ||
                           (!hex && (*q == '+' || *q == '-') && (q[-1] == 'e' || q[-1] == 'E'))))
      q++;
    if (!number_is_valid(ps->p, (size_t)(q - ps->p)))
      return parse_error(ps, t->line, t->column, "invalid number '%.*s'", (int)(q - ps->p > 64 ? 64 : q - ps->p),
                         ps->p);
    ps->p = q;
    t->kind = TOK_NUMBER;
  } else if (c != '\0' && strchr("{}[]<>:,;-", c)) {
    ps->p++;
    t->kind = TOK_PUNCT;
    t->punct = c;
  } else if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7F) {
    return parse_error(ps, t->line, t->column, "unexpected character '%c'", c);
  } else {
    return parse_error(ps, t->line, t->column, "unexpected byte 0x%02x", (unsigned)(unsigned char)c);
  }
  t->len = (size_t)(ps->p - t->start);
  return NULL;
}

static inferd_error *peek(parser *ps, token **t) {
  if (!ps->have_tok) {
    ERR_TRY(lex(ps, &ps->tok));
    ps->have_tok = true;
  }
  *t = &ps->tok;
  return NULL;
}

static void consume(parser *ps) { ps->have_tok = false; }

static bool is_punct(const token *t, char c) { return t->kind == TOK_PUNCT && t->punct == c; }

/* Describes a token for "expected X, got Y" messages. */
static const char *describe(const token *t, char *buf, size_t size) {
  switch (t->kind) {
    case TOK_EOF: return "end of file";
    case TOK_STRING: return "a string";
    case TOK_PUNCT: snprintf(buf, size, "'%c'", t->punct); return buf;
    case TOK_IDENT: snprintf(buf, size, "'%.*s'", (int)(t->len > 64 ? 64 : t->len), t->start); return buf;
    case TOK_NUMBER: snprintf(buf, size, "number %.*s", (int)(t->len > 64 ? 64 : t->len), t->start); return buf;
  }
  return "?";
}

static pbtxt_node *node_new(pbtxt_doc *doc, pbtxt_node *parent, const char *name, size_t name_len) {
  pbtxt_node *n = mem_pool_alloc(doc->pool, sizeof(*n));
  n->name = name ? mem_pool_strndup(doc->pool, name, name_len) : NULL;
  n->text = "";
  if (parent) {
    if (parent->last_child)
      parent->last_child->next = n;
    else
      parent->first_child = n;
    parent->last_child = n;
    parent->child_count++;
  }
  return n;
}

static inferd_error *parse_body(parser *ps, pbtxt_node *msg, char close, int depth);

/* Parses a scalar value into `n`. Adjacent strings join, as in C. */
static inferd_error *parse_scalar(parser *ps, pbtxt_node *n) {
  token *t;
  ERR_TRY(peek(ps, &t));
  n->value_line = t->line;
  n->value_column = t->column;
  char buf[80];
  if (t->kind == TOK_STRING) {
    char *text = t->value;
    size_t len = t->value_len;
    consume(ps);
    for (;;) {
      ERR_TRY(peek(ps, &t));
      if (t->kind != TOK_STRING) break;
      char *joined = mem_pool_alloc(ps->doc->pool, len + t->value_len + 1);
      memcpy(joined, text, len);
      memcpy(joined + len, t->value, t->value_len + 1);
      text = joined;
      len += t->value_len;
      consume(ps);
    }
    n->kind = PBTXT_STRING;
    n->text = text;
    n->text_len = len;
    return NULL;
  }
  bool negative = false;
  if (is_punct(t, '-')) {
    negative = true;
    consume(ps);
    ERR_TRY(peek(ps, &t));
  }
  if (t->kind == TOK_NUMBER || (t->kind == TOK_IDENT && negative)) {
    if (t->kind == TOK_IDENT) {
      /* Only -inf and -nan have a sign in front of a word. */
      char w[16] = {0};
      for (size_t i = 0; i < t->len && i < sizeof(w) - 1; i++) w[i] = (char)(t->start[i] | 0x20);
      if (t->len >= sizeof(w) || (strcmp(w, "inf") && strcmp(w, "infinity") && strcmp(w, "nan")))
        return parse_error(ps, t->line, t->column, "expected a number after '-', got %s", describe(t, buf, sizeof(buf)));
    }
    char *text = mem_pool_alloc(ps->doc->pool, t->len + 2);
    size_t k = 0;
    if (negative) text[k++] = '-';
    memcpy(text + k, t->start, t->len);
    text[k + t->len] = 0;
    n->kind = t->kind == TOK_NUMBER ? PBTXT_NUMBER : PBTXT_IDENT;
    n->text = text;
    n->text_len = k + t->len;
    consume(ps);
    return NULL;
  }
  if (negative)
    return parse_error(ps, t->line, t->column, "expected a number after '-', got %s", describe(t, buf, sizeof(buf)));
  if (t->kind == TOK_IDENT) {
    n->kind = PBTXT_IDENT;
    n->text = mem_pool_strndup(ps->doc->pool, t->start, t->len);
    n->text_len = t->len;
    consume(ps);
    return NULL;
  }
  return parse_error(ps, t->line, t->column, "expected a value for field '%.64s', got %s", n->name,
                     describe(t, buf, sizeof(buf)));
}

/* Parses `{ body }` or `< body >` into `n`; the opening token is current. */
static inferd_error *parse_message(parser *ps, pbtxt_node *n, int depth) {
  token *t;
  ERR_TRY(peek(ps, &t));
  if (depth >= PBTXT_MAX_DEPTH)
    return parse_error(ps, t->line, t->column, "messages nested deeper than %d levels", PBTXT_MAX_DEPTH);
  char close = t->punct == '<' ? '>' : '}';
  n->kind = PBTXT_MESSAGE;
  n->value_line = t->line;
  n->value_column = t->column;
  consume(ps);
  return parse_body(ps, n, close, depth + 1);
}

static inferd_error *parse_list(parser *ps, pbtxt_node *parent, const token *name, int depth) {
  consume(ps); /* '[' */
  token *t;
  char buf[80];
  ERR_TRY(peek(ps, &t));
  if (is_punct(t, ']')) {
    consume(ps);
    return NULL;
  }
  for (;;) {
    pbtxt_node *n = node_new(ps->doc, parent, name->start, name->len);
    n->line = name->line;
    n->column = name->column;
    n->in_list = true;
    ERR_TRY(peek(ps, &t));
    if (is_punct(t, '{') || is_punct(t, '<'))
      ERR_TRY(parse_message(ps, n, depth));
    else
      ERR_TRY(parse_scalar(ps, n));
    ERR_TRY(peek(ps, &t));
    if (is_punct(t, ']')) {
      consume(ps);
      return NULL;
    }
    if (!is_punct(t, ','))
      return parse_error(ps, t->line, t->column, "expected ',' or ']' in the list of field '%.*s', got %s",
                         (int)(name->len > 64 ? 64 : name->len), name->start, describe(t, buf, sizeof(buf)));
    consume(ps);
  }
}

static inferd_error *parse_body(parser *ps, pbtxt_node *msg, char close, int depth) {
  token *t;
  char buf[80];
  for (;;) {
    ERR_TRY(peek(ps, &t));
    if (t->kind == TOK_EOF) {
      if (close) return parse_error(ps, t->line, t->column, "unexpected end of file; expected '%c'", close);
      return NULL;
    }
    if (close && is_punct(t, close)) {
      consume(ps);
      return NULL;
    }
    if (t->kind != TOK_IDENT)
      return parse_error(ps, t->line, t->column, "expected a field name, got %s", describe(t, buf, sizeof(buf)));
    token name = *t;
    int nlen = (int)(name.len > 64 ? 64 : name.len);
    consume(ps);
    ERR_TRY(peek(ps, &t));
    bool colon = is_punct(t, ':');
    if (colon) {
      consume(ps);
      ERR_TRY(peek(ps, &t));
    }
    if (is_punct(t, '[')) {
      ERR_TRY(parse_list(ps, msg, &name, depth));
    } else {
      pbtxt_node *n = node_new(ps->doc, msg, name.start, name.len);
      n->line = name.line;
      n->column = name.column;
      if (is_punct(t, '{') || is_punct(t, '<'))
        ERR_TRY(parse_message(ps, n, depth));
      else if (colon)
        ERR_TRY(parse_scalar(ps, n));
      else
        return parse_error(ps, t->line, t->column, "expected ':' or '{' after field name '%.*s', got %s", nlen,
                           name.start, describe(t, buf, sizeof(buf)));
    }
    ERR_TRY(peek(ps, &t));
    if (is_punct(t, ',') || is_punct(t, ';')) consume(ps);
  }
}

pbtxt_doc *pbtxt_doc_new(const char *source, bool json) {
  pbtxt_doc *doc = mem_zalloc(sizeof(*doc));
  doc->pool = mem_pool_new();
  doc->source = mem_pool_strdup(doc->pool, source ? source : "config");
  doc->json = json;
  doc->root = node_new(doc, NULL, NULL, 0);
  doc->root->kind = PBTXT_MESSAGE;
  return doc;
}

pbtxt_node *pbtxt_add(pbtxt_doc *doc, pbtxt_node *parent, const char *name, pbtxt_kind kind, const char *text,
                      size_t text_len) {
  pbtxt_node *n = node_new(doc, parent ? parent : doc->root, name, name ? strlen(name) : 0);
  n->kind = kind;
  if (kind != PBTXT_MESSAGE && text) {
    n->text = mem_pool_strndup(doc->pool, text, text_len);
    n->text_len = text_len;
  }
  return n;
}

inferd_error *pbtxt_parse(const char *text, size_t len, const char *source, pbtxt_doc **doc_out) {
  *doc_out = NULL;
  if (!source) source = "config.pbtxt";
  if (len > PBTXT_MAX_INPUT_BYTES)
    return err_new(INFERD_ERROR_TOO_LARGE, "%s: %zu bytes is larger than the %u bytes a configuration may have",
                   source, len, PBTXT_MAX_INPUT_BYTES);
  pbtxt_doc *doc = pbtxt_doc_new(source, false);
  parser ps = {.doc = doc, .p = text, .end = text + len, .line = 1, .line_start = text};
  inferd_error *err = parse_body(&ps, doc->root, 0, 0);
  if (err) {
    pbtxt_free(doc);
    return err;
  }
  *doc_out = doc;
  return NULL;
}

void pbtxt_free(pbtxt_doc *doc) {
  if (!doc) return;
  mem_pool_delete(doc->pool);
  free(doc);
}

const char *pbtxt_kind_name(pbtxt_kind kind) {
  switch (kind) {
    case PBTXT_MESSAGE: return "a message";
    case PBTXT_STRING: return "a string";
    case PBTXT_NUMBER: return "a number";
    case PBTXT_IDENT: return "an identifier";
  }
  return "?";
}
