/* AES-128 on the CPU's own instructions, for SRTP's per-packet work (see _aes.c). */
#ifndef LITESFU_AES_H
#define LITESFU_AES_H

#include <stddef.h>
#include <stdint.h>

/* An expanded AES-128 encryption key: the 11 round keys. */
typedef struct {
    uint8_t round[11][16];
} AesKey;

/* One way to run AES-128. `block` and `ctr32` have OpenSSL's block128_f and ctr128_f shapes
 * (key: an AesKey), so CRYPTO_gcm128_* can use them. `ctr32` encrypts `blocks` whole blocks
 * with counter blocks starting at `ivec`, whose last 32 bits count big-endian (mod 2^32);
 * it leaves `ivec` as it was. */
typedef struct {
    const char *name;
    void (*expand)(AesKey *key, const uint8_t raw[16]);
    void (*block)(const unsigned char in[16], unsigned char out[16], const void *key);
    void (*ctr32)(const unsigned char *in, unsigned char *out, size_t blocks, const void *key,
                  const unsigned char ivec[16]);
} AesEngine;

/* The engines this CPU runs, best first, NULL-terminated; empty where there are none. */
const AesEngine *const *aes_engines(void);

#endif
