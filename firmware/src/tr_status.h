/* Status codes shared by every module. The error values are the protocol's NAK reasons
 * (TR_NAK_*, wire_ids.h) so a failing check can be NAKed without translation. */
#ifndef TR_STATUS_H
#define TR_STATUS_H

#include <stdint.h>

#include "wire_ids.h"

typedef enum {
    TR_OK = 0,
    TR_E_BAD_CRC = TR_NAK_BAD_CRC,
    TR_E_BAD_COBS = TR_NAK_BAD_COBS,
    TR_E_TOO_LONG = TR_NAK_TOO_LONG,
    TR_E_BAD_HEADER = TR_NAK_BAD_HEADER,
    TR_E_UNKNOWN_TYPE = TR_NAK_UNKNOWN_TYPE,
    TR_E_BAD_LENGTH = TR_NAK_BAD_LENGTH,
    TR_E_BAD_ARG = TR_NAK_BAD_ARG,
    TR_E_BAD_STATE = TR_NAK_BAD_STATE,
    TR_E_NO_SPACE = TR_NAK_NO_SPACE,
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
