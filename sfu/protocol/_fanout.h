/* What the C files of sfu.protocol._fanout share: the sizes, the three object layouts (SrtpSender,
 * TransportState, PlayerState), RTP byte helpers, and the functions one file calls in another.
 * Private to the extension: nothing here is Python-visible except through the module's types.
 *
 * Shared functions and objects carry the litesfu_ prefix and are hidden from the extension's
 * dynamic symbol table, which exports only PyInit__fanout (and _aes.c's aes_engines) as before.
 * What each function does is said where it is defined.
 */
#ifndef LITESFU_FANOUT_H
#define LITESFU_FANOUT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/modes.h>

#include "_aes.h"

/* pylibsrtp's Policy.SRTP_PROFILE_* values, as sfu.protocol.dtls.SrtpKeys carries them. */
#define PROFILE_AES128_CM_SHA1_80 1
#define PROFILE_AEAD_AES_128_GCM 7

#define CM_SALT 14
#define GCM_SALT 12

/* pylibsrtp protects into a 1500-byte buffer and keeps 16 bytes for the tag: the same bound. */
#define MAX_PLAINTEXT 1484
#define SLOT 1536
/* Streams (SSRCs) one sender keeps state for: a player track uses two (media and RTX). */
#define MAX_STREAMS 16
#define MAX_MID 16
/* The name of AES on OpenSSL's EVP API, there on every machine, in AES_ENGINES. */
#define OPENSSL_ENGINE "openssl"

#if defined(__GNUC__) || defined(__clang__)
#pragma GCC visibility push(hidden)
#endif

/* ------------------------------------------------------------------------------------------ */
/* RTP header */

/* Where the header (fixed part, CSRCs, extension block) ends, or -1 if it does not fit. */
static inline Py_ssize_t header_end(const uint8_t *p, Py_ssize_t len)
{
    if (len < 12)
        return -1;
    Py_ssize_t end = 12 + 4 * (p[0] & 0x0F);
    if (p[0] & 0x10) {
        if (end + 4 > len)
            return -1;
        end += 4 + 4 * ((p[end + 2] << 8) | p[end + 3]);
    }
    return end <= len ? end : -1;
}

static inline uint32_t load32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void store16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void store32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ------------------------------------------------------------------------------------------ */
/* SrtpSender: outbound SRTP for any SSRC, one master key (_fanout_sender.c, _fanout_srtp.c) */

typedef struct {
    uint32_t ssrc;
    uint64_t highest; /* 48-bit packet index of the newest packet protected */
} Stream;

typedef struct {
    PyObject_HEAD
    int profile;            /* 0 until keyed */
    const AesEngine *engine; /* runs AES with `key`; NULL: EVP's `cipher` does */
    AesKey key;              /* the session key, expanded for `engine` */
    GCM128_CONTEXT *gcm;     /* GHASH on `key`, for AES-GCM with an engine */
    EVP_CIPHER_CTX *cipher;  /* AES-128-CTR or AES-128-GCM with the session key, no engine */
    EVP_MAC_CTX *mac;        /* HMAC-SHA1 with the session auth key (AES-CM only) */
    uint8_t salt[CM_SALT];  /* session salt: 14 bytes for AES-CM, the first 12 for GCM */
    int streams_used;
    Stream streams[MAX_STREAMS];
} Sender;

extern PyTypeObject litesfu_sender_type;
/* sfu.protocol._fanout.SrtpError, a pylibsrtp.Error; made by the module's init. */
extern PyObject *litesfu_srtp_error;

Py_ssize_t litesfu_protect(Sender *self, uint8_t *buf, Py_ssize_t len, const char **reason);

/* ------------------------------------------------------------------------------------------ */
/* TransportState: the per-peer fields the fan-out reads, flat in C (a base of PeerSession);
 * _fanout_transport.c */

typedef struct {
    PyObject_HEAD
    PyObject *addr;             /* where the peer's media goes; NULL reads as None */
    unsigned int transport_seq; /* transport-wide CC number of the next packet to the peer */
} Transport;

extern PyTypeObject litesfu_transport_type;

/* Intern the attribute names read from sessions that are not TransportStates; -1 on error. */
int litesfu_transport_names(void);
long litesfu_take_transport_seq(PyObject *session);
PyObject *litesfu_session_addr(PyObject *session);

/* ------------------------------------------------------------------------------------------ */
/* PlayerState: the per-player fields the fan-out reads, flat in C (a base of SubscriberTrack);
 * _fanout_player.c */

typedef struct {
    PyObject_HEAD
    unsigned int ssrc;
    unsigned int payload_type;
    unsigned int seq_offset;
    unsigned int ts_offset;
    char started;
    int fd; /* the socket the fan-out sends with, -1 when this player goes the Python way */
    unsigned int first_out_seq; /* NACKs for numbers before this were sent from elsewhere */
    /* VP8 continuity (sfu.protocol.simulcast.Vp8Continuity): offsets, and the ids last sent from the
     * layer left (-1: it had none) while after_pending, until the next layer's first packet. */
    unsigned int picture_offset;
    unsigned int tl0_offset;
    char after_pending;
    int after_picture;
    int after_tl0;
    int max_temporal; /* the highest VP8 temporal layer sent, -1 for all */
    /* VP9 SVC (sfu.protocol.svc.SvcFilter): the layers wanted, and those sent now (-1 before
     * the first keyframe). */
    int target_spatial;
    int target_temporal;
    int current_spatial;
    int current_temporal;
    long long svc_picture; /* the RTP timestamp of the last picture begun, -1 before any */
    unsigned long long temporal_drops;
    unsigned long long packets;
    unsigned long long bytes;
    PyObject *session;
    PyObject *sender; /* a Sender, or None */
    PyObject *layout; /* extension_layout as set: None or (mid ID, mid, abs ID, twcc ID) */
    uint8_t mid_id, abs_id, transport_id, mid_len;
    uint8_t mid[MAX_MID];
    PyObject *addr; /* the address `name` was made from */
    struct sockaddr_storage name;
    socklen_t name_len;
} Player;

extern PyTypeObject litesfu_player_type;

/* ------------------------------------------------------------------------------------------ */
/* One player's copy of a packet (_fanout_rewrite.c) */

typedef struct {
    Py_ssize_t picture_at; /* offsets in the packet, -1 when absent */
    int bits;              /* of the picture ID: 7 or 15 */
    unsigned int picture;
    Py_ssize_t tl0_at;
    unsigned int tl0;
    int tid; /* the temporal layer, -1 without the T bit */
} Vp8Ids;

/* What fanout() does to payloads besides the header: sfu.protocol.fastpath's PAYLOAD_* rules. */
#define RULE_AS_IS 0
#define RULE_VP8_IDS 1
#define RULE_VP9_SVC 2

/* What the fan-out reads of a VP9 payload descriptor (_fanout_svc.c). */
typedef struct {
    int sid, tid;
    int begins, ends, inter_picture, switching_up;
} Vp9Info;

Py_ssize_t litesfu_rewrite(const Player *player, const uint8_t *packet, Py_ssize_t len,
                           Py_ssize_t start, const uint8_t abs_time[3], uint8_t *out,
                           Py_ssize_t *transport_at);
int litesfu_parse_vp8(const uint8_t *p, Py_ssize_t start, Py_ssize_t len, Vp8Ids *ids);
void litesfu_skip_packet(Player *player, unsigned int seq);
void litesfu_continue_ids(Player *player, const Vp8Ids *ids, uint8_t *out, Py_ssize_t shift);
int litesfu_parse_vp9(const uint8_t *p, Py_ssize_t start, Py_ssize_t len, Vp9Info *info);
int litesfu_svc_admit(Player *player, const Vp9Info *info, uint32_t ts);

/* ------------------------------------------------------------------------------------------ */
/* The fan-out itself (_fanout_send.c), which the module (_fanout.c) exposes as fanout() */

PyObject *litesfu_fanout(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#if defined(__GNUC__) || defined(__clang__)
#pragma GCC visibility pop
#endif

#endif
