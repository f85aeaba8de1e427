/* chat.h: the chat formats on a tokenizer alone (the tr_chat_* functions of transit.h take a model
 * and call these). Not a public header: core/chat.c, the model and the tests include it. */
#ifndef TR_CHAT_H
#define TR_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"
#include "transit.h"

/* ids and text may be NULL (with cap 0) when only the other is wanted; *n_ids and *text_len get the
 * full counts. TR_ERR_RANGE when a given buffer is short. */
tr_status tr_chat_apply(const tr_tokenizer *tok, tr_chat_format f, const tr_chat_message *msgs, int n, int flags,
                        int32_t *ids, int cap, int *n_ids, char *text, size_t text_cap, size_t *text_len);
tr_status tr_chat_turn_end_tokens(const tr_tokenizer *tok, tr_chat_format f, int32_t *ids, int cap, int *n);

#endif
