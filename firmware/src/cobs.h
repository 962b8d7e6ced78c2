/* Consistent Overhead Byte Stuffing (Cheshire & Baker 1999). Encoded data never holds
 * 0x00, so 0x00 delimits frames. Buffers passed here exclude the delimiter. */
#ifndef TR_COBS_H
#define TR_COBS_H

#include <stddef.h>
#include <stdint.h>

#define COBS_OK 0
#define COBS_E_SPACE (-1) /* output buffer too small */
#define COBS_E_FORMAT (-2) /* 0x00 inside the data, or a block cut short */

/* Worst-case encoded size of n bytes: 1 + n + n/254. */
#define COBS_MAX_ENCODED(n) ((size_t)(n) + (size_t)(n) / 254u + 1u)

/* Encode n bytes. A block that ends exactly with the input gets no trailing 0x01 (the
 * shorter canonical form); cobs_decode accepts both forms. */
int cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);

/* Decode one frame body (without its 0x00). */
int cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *out_len);

/* Streaming decoder: feed the bytes of one frame as they arrive so the link needs only a
 * buffer for the decoded packet, not for the encoded frame. */
typedef struct {
    uint8_t *out;
    size_t cap;
    size_t len;       /* bytes decoded so far, counted even past cap */
    uint8_t code;     /* code byte of the current block */
    uint8_t left;     /* data bytes still expected in the current block */
    uint8_t started;  /* a code byte has been seen */
} cobs_dec_t;

void cobs_dec_init(cobs_dec_t *d, uint8_t *out, size_t cap);
/* Feed one byte of the frame body (must be nonzero). Bytes past cap are counted in len
 * but dropped, so the caller can tell TOO_LONG from the length. */
void cobs_dec_push(cobs_dec_t *d, uint8_t b);
/* End of frame: COBS_OK, COBS_E_FORMAT (block cut short) or COBS_E_SPACE (len > cap). */
int cobs_dec_finish(const cobs_dec_t *d);

#endif
