/* CRC-32/IEEE (reflected, poly 0xEDB88320, init/xorout 0xFFFFFFFF) = zlib.crc32. */
#ifndef TR_CRC32_H
#define TR_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC like zlib.crc32(data, crc): start with crc = 0. */
uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t n);

#endif
