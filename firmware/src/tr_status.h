/* Status codes shared by every module. Values 1..9 are the protocol's NAK reasons
 * (docs/protocol.md §3) so a failing check can be NAKed without translation. */
#ifndef TR_STATUS_H
#define TR_STATUS_H

#include <stdint.h>

typedef enum {
    TR_OK = 0,
    TR_E_BAD_CRC = 1,
    TR_E_BAD_COBS = 2,
    TR_E_TOO_LONG = 3,
    TR_E_BAD_HEADER = 4,
    TR_E_UNKNOWN_TYPE = 5,
    TR_E_BAD_LENGTH = 6,
    TR_E_BAD_ARG = 7,
    TR_E_BAD_STATE = 8,
    TR_E_NO_SPACE = 9,
    TR_SILENT = 0xFF /* handler ran and deliberately sends no response (DEBUG) */
} tr_status_t;

/* Extra information for a NAK: detail (byte offset of the bad field for BAD_ARG) and a
 * short static ASCII text (<= 64 bytes, may be NULL). */
typedef struct {
    uint16_t detail;
    const char *text;
} tr_err_t;

/* Fill *err (if given) and return st; keeps error paths one line long. */
static inline tr_status_t tr_fail(tr_err_t *err, tr_status_t st, uint16_t detail, const char *text)
{
    if (err) {
        err->detail = detail;
        err->text = text;
    }
    return st;
}

#endif
