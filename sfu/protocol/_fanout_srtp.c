/* SRTP protection of one RTP packet, as an SrtpSender applies it: the packet index (RFC 3711
 * Appendix A, as libsrtp estimates it for an outbound stream with repeats allowed), then
 * AES-GCM (RFC 7714) or AES-CM with HMAC-SHA1 (RFC 3711 §4.1.1, §4.2) in place. AES runs on
 * the sender's engine (_aes.c, with OpenSSL's GHASH for GCM) or on OpenSSL's EVP API.
 */
#include "_fanout.h"

#include <string.h>

#define CM_TAG 10
#define GCM_TAG 16
#define ROC_BYTES 4
#define SEQ_HALF 32768
#define SEQ_SPAN 65536
/* libsrtp's default replay window: an index this far behind the highest is refused. */
#define WINDOW 128

/* RFC 3711 Appendix A as libsrtp applies it to an outbound stream: until the highest index
 * passes 2^15 the rollover counter is taken as 0; after that it is guessed from the distance
 * to the highest sequence number. Returns index - highest through *delta. */
static uint64_t estimate_index(uint64_t highest, uint16_t seq, int64_t *delta)
{
    if (highest <= SEQ_HALF) {
        *delta = (int64_t)seq - (int64_t)highest;
        return seq;
    }
    uint32_t roc = (uint32_t)(highest >> 16);
    int64_t last = (int64_t)(highest & 0xFFFF);
    int64_t s = seq;
    if (last < SEQ_HALF && s - last > SEQ_HALF) {
        roc -= 1;
        *delta = s - last - SEQ_SPAN;
    } else if (last >= SEQ_HALF && last - SEQ_HALF > s) {
        roc += 1;
        *delta = s - last + SEQ_SPAN;
    } else {
        *delta = s - last;
    }
    return ((uint64_t)roc << 16 | (uint64_t)seq) & 0xFFFFFFFFFFFFULL;
}

/* The packet index for this SSRC and sequence number, updating the stream's highest index;
 * -1 (with a reason) when there is no room for another stream or it is older than the window.
 * A repeated index is allowed: NACKed packets are sent again with their sequence number. */
static int64_t next_index(Sender *self, uint32_t ssrc, uint16_t seq, const char **reason)
{
    Stream *stream = NULL;
    for (int i = 0; i < self->streams_used; i++) {
        if (self->streams[i].ssrc == ssrc) {
            stream = &self->streams[i];
            break;
        }
    }
    if (stream == NULL) {
        if (self->streams_used == MAX_STREAMS) {
            *reason = "too many SSRCs for one SRTP sender";
            return -1;
        }
        stream = &self->streams[self->streams_used++];
        stream->ssrc = ssrc;
        stream->highest = 0;
    }
    int64_t delta;
    uint64_t index = estimate_index(stream->highest, seq, &delta);
    if (delta > 0)
        stream->highest = index;
    else if (delta <= -WINDOW) {
        *reason = "packet index too old";
        return -1;
    }
    return (int64_t)index;
}

/* RFC 7714 §7.1 in place: buf[0:start] authenticated, buf[start:len] encrypted, the tag
 * written at buf[len]. */
static int gcm_seal(Sender *self, uint8_t *buf, Py_ssize_t start, Py_ssize_t len,
                    const uint8_t iv[GCM_SALT])
{
    if (self->engine) {
        CRYPTO_gcm128_setiv(self->gcm, iv, GCM_SALT);
        if (CRYPTO_gcm128_aad(self->gcm, buf, (size_t)start) != 0 ||
            CRYPTO_gcm128_encrypt_ctr32(self->gcm, buf + start, buf + start, (size_t)(len - start),
                                        self->engine->ctr32) != 0)
            return 0;
        CRYPTO_gcm128_tag(self->gcm, buf + len, GCM_TAG);
        return 1;
    }
    int written = 0;
    return EVP_EncryptInit_ex(self->cipher, NULL, NULL, NULL, iv) &&
           EVP_EncryptUpdate(self->cipher, NULL, &written, buf, (int)start) &&
           EVP_EncryptUpdate(self->cipher, buf + start, &written, buf + start, (int)(len - start)) &&
           EVP_EncryptFinal_ex(self->cipher, buf + start + written, &written) &&
           EVP_CIPHER_CTX_ctrl(self->cipher, EVP_CTRL_GCM_GET_TAG, GCM_TAG, buf + len);
}

/* RFC 3711 §4.1.1's keystream XORed over data[0:len] in place, from the 16-byte IV. */
static int cm_encrypt(Sender *self, uint8_t *data, size_t len, const uint8_t iv[16])
{
    if (!self->engine) {
        int written = 0;
        return EVP_EncryptInit_ex(self->cipher, NULL, NULL, NULL, iv) &&
               EVP_EncryptUpdate(self->cipher, data, &written, data, (int)len);
    }
    size_t whole = len / 16, rest = len % 16;
    self->engine->ctr32(data, data, whole, &self->key, iv);
    if (rest) {
        /* Block `whole`: the IV's low 16 bits are the block counter (they start at zero). */
        uint8_t counter[16], last[16] = {0};
        memcpy(counter, iv, 16);
        store16(counter + 14, (uint32_t)whole);
        memcpy(last, data + 16 * whole, rest);
        self->engine->ctr32(last, last, 1, &self->key, counter);
        memcpy(data + 16 * whole, last, rest);
    }
    return 1;
}

/* Protect the RTP packet in buf[0:len] in place (buf has room for the tag); the protected
 * length, or -1 with *reason set. */
Py_ssize_t litesfu_protect(Sender *self, uint8_t *buf, Py_ssize_t len, const char **reason)
{
    if (len > MAX_PLAINTEXT) {
        *reason = "packet is too long";
        return -1;
    }
    Py_ssize_t start = header_end(buf, len);
    if (start < 0) {
        *reason = "malformed RTP header";
        return -1;
    }
    uint32_t ssrc = load32(buf + 8);
    int64_t index = next_index(self, ssrc, (uint16_t)(buf[2] << 8 | buf[3]), reason);
    if (index < 0)
        return -1;
    uint32_t roc = (uint32_t)(index >> 16);
    uint8_t iv[16] = {0};
    if (self->profile == PROFILE_AEAD_AES_128_GCM) {
        /* RFC 7714 §8.1: 00 00 || SSRC || ROC || SEQ, XOR the 12-byte salt. */
        store32(iv + 2, ssrc);
        store32(iv + 6, roc);
        iv[10] = buf[2];
        iv[11] = buf[3];
        for (int i = 0; i < GCM_SALT; i++)
            iv[i] ^= self->salt[i];
        if (!gcm_seal(self, buf, start, len, iv)) {
            *reason = "AES-GCM failed";
            return -1;
        }
        return len + GCM_TAG;
    }
    /* RFC 3711 §4.1.1: IV = salt * 2^16 XOR SSRC * 2^64 XOR index * 2^16. */
    memcpy(iv, self->salt, CM_SALT);
    for (int i = 0; i < 4; i++)
        iv[4 + i] ^= buf[8 + i];
    for (int i = 0; i < 6; i++)
        iv[8 + i] ^= (uint8_t)(index >> (40 - 8 * i));
    uint8_t roc_bytes[ROC_BYTES];
    uint8_t digest[EVP_MAX_MD_SIZE];
    size_t digest_len = 0;
    store32(roc_bytes, roc);
    if (!cm_encrypt(self, buf + start, (size_t)(len - start), iv) ||
        !EVP_MAC_init(self->mac, NULL, 0, NULL) || !EVP_MAC_update(self->mac, buf, (size_t)len) ||
        !EVP_MAC_update(self->mac, roc_bytes, ROC_BYTES) ||
        !EVP_MAC_final(self->mac, digest, &digest_len, sizeof(digest))) {
        *reason = "AES-CM or HMAC-SHA1 failed";
        return -1;
    }
    memcpy(buf + len, digest, CM_TAG);
    return len + CM_TAG;
}
