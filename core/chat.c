/* chat.c: chat formats (design §11, docs/chat.md): a conversation as the tokens its model was tuned on.
 *
 * Checkpoints describe their chat format as a Jinja template (tokenizer_config.json's chat_template,
 * GGUF's tokenizer.chat_template). transit does not interpret Jinja: it recognises which of three
 * well-known formats a template writes and writes that format itself, exactly as transformers'
 * apply_chat_template renders the template and then tokenizes the text. Each format below is the
 * template written out as C, down to its whitespace: Jinja's `trim` and Python's str.strip remove
 * Unicode whitespace (U+00A0, U+3000, ...) from both ends, so strip_ws does too.
 *
 * The prompt is built as runs of text and special tokens. Tokenizing the rendered text splits it at
 * special tokens anyway, so encoding each maximal run of text on its own gives the same ids, with
 * one difference by design: the text of a message is always text. A user who types "<|eot_id|>"
 * gets those characters, not a forged end of turn, where rendering then tokenizing with
 * special-token matching would obey it. */
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "error.h"
#include "model.h"

static const char *const format_names[] = {"none", "llama3", "llama2", "chatml"};

const char *tr_chat_format_name(tr_chat_format f)
{
    return (unsigned)f < sizeof format_names / sizeof *format_names ? format_names[f] : "none";
}

tr_status tr_chat_format_from_name(const char *name, tr_chat_format *out)
{
    for (int f = TR_CHAT_LLAMA3; f <= TR_CHAT_CHATML; f++)
        if (name && !strcmp(name, format_names[f])) {
            *out = (tr_chat_format)f;
            return TR_OK;
        }
    return tr_fail(TR_ERR_INVALID_ARG, "unknown chat format '%.40s' (llama3, llama2 or chatml)", name ? name : "");
}

tr_status tr_chat_format_detect(const char *tmpl, const char *source, tr_chat_format *out)
{
    *out = TR_CHAT_NONE;
    if (!source)
        source = "chat template";
    if (!tmpl)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: the model has no chat template", source);
    /* each format by the markup only it writes; Llama 3.1 and 3.2 templates add tool calls and a
     * dated system preamble around the same turns, which transit leaves out (as llama.cpp does) */
    if (strstr(tmpl, "<|start_header_id|>") && strstr(tmpl, "<|end_header_id|>"))
        *out = TR_CHAT_LLAMA3;
    else if (strstr(tmpl, "<|im_start|>") && strstr(tmpl, "<|im_end|>"))
        *out = TR_CHAT_CHATML;
    else if (strstr(tmpl, "[INST]") && strstr(tmpl, "<<SYS>>"))
        *out = TR_CHAT_LLAMA2;
    else if (strstr(tmpl, "[INST]"))
        return tr_fail(TR_ERR_UNSUPPORTED,
                       "%s: an [INST] template without Llama 2's <<SYS>> block (Mistral's kind), which transit "
                       "does not write", source);
    else
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: the chat template is none of the formats transit writes (Llama 3, "
                       "Llama 2, ChatML)", source);
    return TR_OK;
}

/* ---- building a prompt ------------------------------------------------------------------------- */

typedef struct chat_out {
    const tr_tokenizer *tok;
    const char *format;
    char *run; /* text not yet encoded */
    size_t run_len, run_cap;
    int32_t *ids; /* the caller's buffer; n counts past cap */
    int cap, n;
    int encode;   /* the ids are wanted (tr_chat_render wants the text alone) */
    char *text; /* the caller's buffer for the rendered prompt; text_len counts past text_cap */
    size_t text_cap, text_len;
    int32_t *scratch; /* ids of one run */
    int scratch_cap;
    tr_status err;
} chat_out;

static void put_rendered(chat_out *o, const char *s, size_t len)
{
    if (o->text && o->text_len < o->text_cap)
        memcpy(o->text + o->text_len, s, len < o->text_cap - o->text_len ? len : o->text_cap - o->text_len);
    o->text_len += len;
}

static void put_id(chat_out *o, int32_t id)
{
    if (o->n < o->cap)
        o->ids[o->n] = id;
    o->n++;
}

static void put_text(chat_out *o, const char *s, size_t len)
{
    if (o->err || len == 0)
        return;
    if (o->run_len + len > o->run_cap) {
        size_t cap = o->run_cap ? o->run_cap : 256;
        while (cap < o->run_len + len)
            cap *= 2;
        char *grown = realloc(o->run, cap);
        if (!grown) {
            o->err = tr_fail(TR_ERR_NOMEM, "chat: out of memory");
            return;
        }
        o->run = grown;
        o->run_cap = cap;
    }
    memcpy(o->run + o->run_len, s, len);
    o->run_len += len;
    put_rendered(o, s, len);
}

static void put_str(chat_out *o, const char *s) { put_text(o, s, strlen(s)); }

/* Encodes the pending text (a run between two special tokens). */
static void flush(chat_out *o)
{
    if (!o->encode)
        o->run_len = 0;
    if (o->err || o->run_len == 0)
        return;
    int n = 0;
    tr_status s = tr_tokenizer_encode_literal(o->tok, o->run, o->run_len, o->scratch, o->scratch_cap, &n);
    if (s == TR_ERR_RANGE && n > o->scratch_cap) {
        int32_t *grown = realloc(o->scratch, (size_t)n * sizeof *grown);
        if (!grown) {
            o->err = tr_fail(TR_ERR_NOMEM, "chat: out of memory");
            return;
        }
        o->scratch = grown;
        o->scratch_cap = n;
        s = tr_tokenizer_encode_literal(o->tok, o->run, o->run_len, o->scratch, o->scratch_cap, &n);
    }
    if (s != TR_OK) {
        o->err = s;
        return;
    }
    for (int i = 0; i < n; i++)
        put_id(o, o->scratch[i]);
    o->run_len = 0;
}

static void put_special_id(chat_out *o, int32_t id, const char *what)
{
    if (o->err)
        return;
    if (id < 0) {
        o->err = tr_fail(TR_ERR_UNSUPPORTED, "chat format %s needs a %s token, which the tokenizer does not have",
                         o->format, what);
        return;
    }
    flush(o);
    put_id(o, id);
    const char *s;
    size_t len;
    tr_tokenizer_special_text(o->tok, id, &s, &len);
    put_rendered(o, s, len);
}

static void put_special(chat_out *o, const char *name)
{
    put_special_id(o, tr_tokenizer_find_special(o->tok, name), name);
}

/* Python's str.isspace for one UTF-8 character at s (length in *len), which Jinja's trim and
 * str.strip remove. */
static int is_space_at(const unsigned char *s, size_t avail, size_t *len)
{
    *len = 1;
    if (s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r') || (s[0] >= 0x1c && s[0] <= 0x1f))
        return 1;
    unsigned cp = 0;
    if (s[0] == 0xC2 && avail >= 2) {
        cp = s[1] == 0x85 || s[1] == 0xA0 ? s[1] : 0;
        *len = 2;
    } else if ((s[0] == 0xE1 || s[0] == 0xE2 || s[0] == 0xE3) && avail >= 3 && (s[1] & 0xC0) == 0x80 &&
               (s[2] & 0xC0) == 0x80) {
        cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        *len = 3;
    }
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static void put_stripped(chat_out *o, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t a = 0, b = len, k;
    while (a < b && is_space_at(s + a, b - a, &k))
        a += k;
    while (a < b) { /* a whitespace character ending at b: its first byte is within 3 of the end */
        size_t start = b - 1;
        while (start > a && b - start < 3 && (s[start] & 0xC0) == 0x80)
            start--;
        if (!is_space_at(s + start, b - start, &k) || start + k != b)
            break;
        b = start;
    }
    put_text(o, text + a, b - a);
}

/* ---- the formats --------------------------------------------------------------------------------- */

static void write_llama3(chat_out *o, const tr_chat_message *m, int n, int flags)
{
    if (!(flags & TR_CHAT_CONTINUE) && tr_tokenizer_bos(o->tok) >= 0)
        put_special_id(o, tr_tokenizer_bos(o->tok), "BOS");
    for (int i = 0; i < n; i++) {
        put_special(o, "<|start_header_id|>");
        put_str(o, m[i].role);
        put_special(o, "<|end_header_id|>");
        put_str(o, "\n\n");
        put_stripped(o, m[i].content, strlen(m[i].content));
        put_special(o, "<|eot_id|>");
    }
    if (flags & TR_CHAT_GENERATION_PROMPT) {
        put_special(o, "<|start_header_id|>");
        put_str(o, "assistant");
        put_special(o, "<|end_header_id|>");
        put_str(o, "\n\n");
    }
}

/* Llama-2-chat: the system prompt goes inside the first user turn; roles alternate user/assistant;
 * a user turn is <s>[INST] text [/INST], a reply " text </s>; there is no generation prompt. */
static void write_llama2(chat_out *o, const tr_chat_message *m, int n, int flags)
{
    const char *system = NULL;
    int first = 0;
    if (n > 0 && !strcmp(m[0].role, "system")) {
        if (flags & TR_CHAT_CONTINUE) {
            o->err = tr_fail(TR_ERR_UNSUPPORTED, "chat format llama2 has a system prompt only in the first turn");
            return;
        }
        system = m[0].content;
        first = 1;
    }
    for (int i = first; i < n && !o->err; i++) {
        int user = !strcmp(m[i].role, "user");
        if (user != ((i - first) % 2 == 0) || (!user && strcmp(m[i].role, "assistant"))) {
            o->err = tr_fail(TR_ERR_INVALID_ARG, "chat format llama2 needs the roles user, assistant, user, ... after "
                             "an optional system message; message %d is '%.40s'", i, m[i].role);
            return;
        }
        const char *content = m[i].content;
        char *joined = NULL;
        if (i == first && system) { /* stripped as one text: the template strips the joined string */
            static const char open[] = "<<SYS>>\n", close[] = "\n<</SYS>>\n\n";
            size_t ls = strlen(system), lc = strlen(content);
            joined = malloc(sizeof open + ls + sizeof close + lc);
            if (!joined) {
                o->err = tr_fail(TR_ERR_NOMEM, "chat: out of memory");
                return;
            }
            memcpy(joined, open, sizeof open - 1);
            memcpy(joined + sizeof open - 1, system, ls);
            memcpy(joined + sizeof open - 1 + ls, close, sizeof close - 1);
            memcpy(joined + sizeof open - 1 + ls + sizeof close - 1, content, lc + 1);
            content = joined;
        }
        if (user) {
            put_special_id(o, tr_tokenizer_bos(o->tok), "BOS");
            put_str(o, "[INST] ");
            put_stripped(o, content, strlen(content));
            put_str(o, " [/INST]");
        } else {
            put_str(o, " ");
            put_stripped(o, content, strlen(content));
            put_str(o, " ");
            put_special_id(o, tr_tokenizer_eos(o->tok), "EOS");
        }
        free(joined);
    }
}

static void write_chatml(chat_out *o, const tr_chat_message *m, int n, int flags)
{
    for (int i = 0; i < n; i++) {
        put_special(o, "<|im_start|>");
        put_str(o, m[i].role);
        put_str(o, "\n");
        put_str(o, m[i].content);
        put_special(o, "<|im_end|>");
        put_str(o, "\n");
    }
    if (flags & TR_CHAT_GENERATION_PROMPT) {
        put_special(o, "<|im_start|>");
        put_str(o, "assistant\n");
    }
}

static tr_status finish(chat_out *o, int *n_ids, size_t *text_len)
{
    flush(o);
    free(o->run);
    free(o->scratch);
    if (o->err)
        return o->err;
    if (n_ids)
        *n_ids = o->n;
    if (text_len)
        *text_len = o->text_len;
    if (o->text && o->text_len < o->text_cap)
        o->text[o->text_len] = '\0';
    if (o->n > o->cap && o->ids)
        return tr_fail(TR_ERR_RANGE, "chat: the prompt has %d tokens, the buffer room for %d", o->n, o->cap);
    if (o->text && o->text_len >= o->text_cap)
        return tr_fail(TR_ERR_RANGE, "chat: the prompt has %zu bytes, the buffer room for %zu", o->text_len,
                       o->text_cap ? o->text_cap - 1 : 0);
    return TR_OK;
}

tr_status tr_chat_apply(const tr_tokenizer *tok, tr_chat_format f, const tr_chat_message *msgs, int n, int flags,
                        int32_t *ids, int cap, int *n_ids, char *text, size_t text_cap, size_t *text_len)
{
    if (n_ids)
        *n_ids = 0;
    if (text_len)
        *text_len = 0;
    if (!tok || n < 0 || (n > 0 && !msgs) || cap < 0 || (!ids && cap > 0) || (!text && text_cap > 0))
        return tr_fail(TR_ERR_INVALID_ARG, "tr_chat_tokenize: invalid arguments");
    for (int i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return tr_fail(TR_ERR_INVALID_ARG, "tr_chat_tokenize: message %d has no %s", i,
                           msgs[i].role ? "content" : "role");
    chat_out o = {.tok = tok, .format = tr_chat_format_name(f), .ids = ids, .cap = cap, .n = 0,
                  .encode = n_ids != NULL, .text = text, .text_cap = text_cap};
    switch (f) {
    case TR_CHAT_LLAMA3: write_llama3(&o, msgs, n, flags); break;
    case TR_CHAT_LLAMA2: write_llama2(&o, msgs, n, flags); break;
    case TR_CHAT_CHATML: write_chatml(&o, msgs, n, flags); break;
    default: o.err = tr_fail(TR_ERR_INVALID_ARG, "tr_chat_tokenize: no chat format given"); break;
    }
    return finish(&o, n_ids, text_len);
}

tr_status tr_chat_turn_end_tokens(const tr_tokenizer *tok, tr_chat_format f, int32_t *ids, int cap, int *n)
{
    chat_out o = {.tok = tok, .format = tr_chat_format_name(f), .ids = ids, .cap = cap, .encode = 1};
    *n = 0;
    switch (f) {
    case TR_CHAT_LLAMA3: put_special(&o, "<|eot_id|>"); break;
    case TR_CHAT_LLAMA2: put_special_id(&o, tr_tokenizer_eos(tok), "EOS"); break;
    case TR_CHAT_CHATML: put_special(&o, "<|im_end|>"); put_str(&o, "\n"); break;
    default: o.err = tr_fail(TR_ERR_INVALID_ARG, "tr_chat_turn_end: no chat format given"); break;
    }
    return finish(&o, n, NULL);
}

/* ---- the model-level API ------------------------------------------------------------------------ */

const char *tr_model_chat_template(const tr_model *m, const char **source)
{
    if (source)
        *source = m->file.chat_template ? m->file.chat_template_source : NULL;
    return m->file.chat_template;
}

tr_status tr_model_chat_format(const tr_model *m, tr_chat_format *out)
{
    const char *source;
    const char *tmpl = tr_model_chat_template(m, &source);
    if (!tmpl)
        return tr_fail(TR_ERR_UNSUPPORTED, "%s: the model has no chat template", m->file.path);
    return tr_chat_format_detect(tmpl, source, out);
}

tr_status tr_chat_tokenize(const tr_model *m, tr_chat_format f, const tr_chat_message *msgs, int n, int flags,
                           int32_t *ids, int cap, int *n_ids)
{
    return tr_chat_apply(m->tok, f, msgs, n, flags, ids, cap, n_ids, NULL, 0, NULL);
}

tr_status tr_chat_render(const tr_model *m, tr_chat_format f, const tr_chat_message *msgs, int n, int flags,
                         char *buf, size_t cap, size_t *len)
{
    return tr_chat_apply(m->tok, f, msgs, n, flags, NULL, 0, NULL, buf, cap, len);
}

tr_status tr_chat_turn_end(const tr_model *m, tr_chat_format f, int32_t *ids, int cap, int *n)
{
    return tr_chat_turn_end_tokens(m->tok, f, ids, cap, n);
}
