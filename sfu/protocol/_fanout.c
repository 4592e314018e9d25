/* The forwarding hot path in C: SRTP protection and a fan-out that rewrites, protects and
 * sends one RTP packet to every player with one sendmmsg. AES runs on the CPU's instructions
 * (_aes.c) with OpenSSL's GHASH for GCM, or all on OpenSSL's EVP API where they are missing.
 *
 * SRTP follows RFC 3711 (AES-CM keystream §4.1.1, HMAC-SHA1 §4.2, key derivation §4.3, packet
 * index estimation Appendix A) and RFC 7714 (AEAD_AES_128_GCM, IV §8.1, AAD §8.2). Sender-side
 * state mirrors what libsrtp keeps for an outbound stream with repeats allowed, so the bytes
 * are the same as pylibsrtp's for the same keys and packets; tests/unit/test_fanout.py checks.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/modes.h>

#include "_aes.h"

/* pylibsrtp's Policy.SRTP_PROFILE_* values, as sfu.protocol.dtls.SrtpKeys carries them. */
#define PROFILE_AES128_CM_SHA1_80 1
#define PROFILE_AEAD_AES_128_GCM 7

#define MASTER_KEY 16
#define CM_SALT 14
#define GCM_SALT 12
#define CM_AUTH_KEY 20
#define CM_TAG 10
#define GCM_TAG 16
#define ROC_BYTES 4

/* pylibsrtp protects into a 1500-byte buffer and keeps 16 bytes for the tag: the same bound. */
#define MAX_PLAINTEXT 1484
#define SLOT 1536
/* Streams (SSRCs) one sender keeps state for: a player track uses two (media and RTX). */
#define MAX_STREAMS 16
/* About what OpenSSL 3's GCM128_CONTEXT takes (opaque to us): its counters, H and Htable. */
#define GCM_STATE_BYTES 448
/* The kernel's limit on datagrams per sendmmsg (UIO_MAXIOV). */
#define MAX_BATCH 1024
#define SEQ_HALF 32768
#define SEQ_SPAN 65536
/* libsrtp's default replay window: an index this far behind the highest is refused. */
#define WINDOW 128
#define MAX_MID 16
#define MAX_EXTENSION_ID 14
/* The name of AES on OpenSSL's EVP API, there on every machine, in AES_ENGINES. */
#define OPENSSL_ENGINE "openssl"

static PyObject *SrtpError;
static PyObject *str_addr;
static PyObject *str_transport_seq;

/* ------------------------------------------------------------------------------------------ */
/* RTP header */

/* Where the header (fixed part, CSRCs, extension block) ends, or -1 if it does not fit. */
static Py_ssize_t header_end(const uint8_t *p, Py_ssize_t len)
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
/* SrtpSender: outbound SRTP for any SSRC, one master key */

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

/* RFC 3711 §4.3.1 with kdr = 0: AES-CM keystream under the master key from the IV
 * (master salt XOR label at byte 7) * 2^16. A 12-byte GCM master salt is the high 96 bits. */
static int derive(const uint8_t *master_key, const uint8_t *master_salt, size_t salt_len,
                  uint8_t label, uint8_t *out, int out_len)
{
    uint8_t iv[16] = {0};
    uint8_t zeros[32] = {0};
    int written = 0;
    memcpy(iv, master_salt, salt_len);
    iv[7] ^= label;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, master_key, iv) &&
             EVP_EncryptUpdate(ctx, out, &written, zeros, out_len) && written == out_len;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

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
static Py_ssize_t protect_in_place(Sender *self, uint8_t *buf, Py_ssize_t len, const char **reason)
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

/* The session key into the engine (and GHASH over it for GCM), or into an EVP context. */
static int cipher_key(Sender *self, int profile, const uint8_t key[MASTER_KEY])
{
    int gcm = profile == PROFILE_AEAD_AES_128_GCM;
    if (self->engine) {
        self->engine->expand(&self->key, key);
        self->gcm = gcm ? CRYPTO_gcm128_new(&self->key, self->engine->block) : NULL;
        return !gcm || self->gcm != NULL;
    }
    self->cipher = EVP_CIPHER_CTX_new();
    const EVP_CIPHER *kind = gcm ? EVP_aes_128_gcm() : EVP_aes_128_ctr();
    return self->cipher && EVP_EncryptInit_ex(self->cipher, kind, NULL, key, NULL);
}

static int sender_key(Sender *self, int profile, const uint8_t *master, Py_ssize_t master_len)
{
    size_t salt_len = profile == PROFILE_AEAD_AES_128_GCM ? GCM_SALT : CM_SALT;
    uint8_t key[MASTER_KEY];
    uint8_t auth_key[CM_AUTH_KEY];
    if (master_len != (Py_ssize_t)(MASTER_KEY + salt_len)) {
        PyErr_Format(PyExc_ValueError, "master key and salt must be %d bytes for profile %d",
                     (int)(MASTER_KEY + salt_len), profile);
        return -1;
    }
    const uint8_t *master_salt = master + MASTER_KEY;
    if (!derive(master, master_salt, salt_len, 0x00, key, MASTER_KEY) ||
        !derive(master, master_salt, salt_len, 0x02, self->salt, (int)salt_len)) {
        PyErr_SetString(SrtpError, "SRTP key derivation failed");
        return -1;
    }
    if (!cipher_key(self, profile, key)) {
        PyErr_SetString(SrtpError, "cannot set up the SRTP cipher");
        return -1;
    }
    self->profile = profile;
    if (profile == PROFILE_AEAD_AES_128_GCM)
        return 0;
    if (!derive(master, master_salt, salt_len, 0x01, auth_key, CM_AUTH_KEY)) {
        PyErr_SetString(SrtpError, "SRTP key derivation failed");
        return -1;
    }
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    self->mac = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    EVP_MAC_free(hmac);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA1", 0),
        OSSL_PARAM_construct_end(),
    };
    if (!self->mac || !EVP_MAC_init(self->mac, auth_key, CM_AUTH_KEY, params)) {
        PyErr_SetString(SrtpError, "cannot set up HMAC-SHA1");
        return -1;
    }
    return 0;
}

/* The engine called `name` (NULL: the best this CPU has); *found is NULL for "openssl". */
static int find_engine(const char *name, const AesEngine **found)
{
    const AesEngine *const *engines = aes_engines();
    if (name == NULL || strcmp(name, OPENSSL_ENGINE) == 0) {
        *found = name == NULL ? engines[0] : NULL;
        return 0;
    }
    for (; *engines; engines++) {
        if (strcmp((*engines)->name, name) == 0) {
            *found = *engines;
            return 0;
        }
    }
    PyErr_Format(PyExc_ValueError, "AES engine %s is not available on this CPU", name);
    return -1;
}

static int Sender_init(Sender *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"profile", "master", "engine", NULL};
    int profile;
    Py_buffer master;
    const char *engine = NULL;
    if (self->profile) {
        PyErr_SetString(PyExc_TypeError, "SrtpSender is already keyed");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iy*|z", keywords, &profile, &master, &engine))
        return -1;
    int result = -1;
    if (profile != PROFILE_AES128_CM_SHA1_80 && profile != PROFILE_AEAD_AES_128_GCM)
        PyErr_Format(PyExc_ValueError, "unsupported SRTP profile %d", profile);
    else if (find_engine(engine, &self->engine) == 0)
        result = sender_key(self, profile, master.buf, master.len);
    PyBuffer_Release(&master);
    return result;
}

static void Sender_dealloc(Sender *self)
{
    if (self->gcm)
        CRYPTO_gcm128_release(self->gcm);
    EVP_CIPHER_CTX_free(self->cipher);
    EVP_MAC_CTX_free(self->mac);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Sender_get_engine(Sender *self, void *closure)
{
    return PyUnicode_FromString(self->engine ? self->engine->name : OPENSSL_ENGINE);
}

static PyObject *Sender_protect(Sender *self, PyObject *arg)
{
    Py_buffer packet;
    uint8_t buf[SLOT];
    const char *reason = NULL;
    if (!self->profile) {
        PyErr_SetString(PyExc_TypeError, "SrtpSender is not keyed");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &packet, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_ssize_t len = packet.len;
    if (len <= MAX_PLAINTEXT)
        memcpy(buf, packet.buf, (size_t)len);
    PyBuffer_Release(&packet);
    len = protect_in_place(self, buf, len, &reason);
    if (len < 0) {
        PyErr_SetString(SrtpError, reason);
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)buf, len);
}

static PyMethodDef Sender_methods[] = {
    {"protect", (PyCFunction)Sender_protect, METH_O,
     "protect(packet) -> bytes: the SRTP packet; SrtpError when it cannot be protected."},
    {NULL},
};

static PyGetSetDef Sender_getset[] = {
    {"engine", (getter)Sender_get_engine, NULL,
     "the AES engine this sender runs on: one of AES_ENGINES", NULL},
    {NULL},
};

static PyTypeObject SenderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sfu.protocol._fanout.SrtpSender",
    .tp_doc = "SrtpSender(profile, master, engine=None): outbound SRTP (RFC 3711 "
              "AES-CM/HMAC-SHA1-80 or RFC 7714 AES-128-GCM) for any SSRC, from the DTLS-exported "
              "master key || salt; AES runs on `engine` (one of AES_ENGINES; None: the first).",
    .tp_basicsize = sizeof(Sender),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Sender_init,
    .tp_dealloc = (destructor)Sender_dealloc,
    .tp_methods = Sender_methods,
    .tp_getset = Sender_getset,
};

/* ------------------------------------------------------------------------------------------ */
/* TransportState: the per-peer fields the fan-out reads, flat in C (a base of PeerSession) */

typedef struct {
    PyObject_HEAD
    PyObject *addr;             /* where the peer's media goes; NULL reads as None */
    unsigned int transport_seq; /* transport-wide CC number of the next packet to the peer */
} Transport;

static int Transport_traverse(Transport *self, visitproc visit, void *arg)
{
    Py_VISIT(self->addr);
    return 0;
}

static int Transport_clear(Transport *self)
{
    Py_CLEAR(self->addr);
    return 0;
}

static void Transport_dealloc(Transport *self)
{
    PyObject_GC_UnTrack(self);
    Transport_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef Transport_members[] = {
    {"addr", T_OBJECT, offsetof(Transport, addr), 0, NULL},
    {"transport_seq", T_UINT, offsetof(Transport, transport_seq), 0, NULL},
    {NULL},
};

static PyTypeObject TransportType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sfu.protocol._fanout.TransportState",
    .tp_doc = "The fields of a peer session the fan-out reads for every packet, flat in C.",
    .tp_basicsize = sizeof(Transport),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)Transport_traverse,
    .tp_clear = (inquiry)Transport_clear,
    .tp_dealloc = (destructor)Transport_dealloc,
    .tp_members = Transport_members,
};

/* ------------------------------------------------------------------------------------------ */
/* PlayerState: the per-player fields the fan-out reads, flat in C (a base of SubscriberTrack) */

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

static PyObject *Player_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Player *self = (Player *)type->tp_alloc(type, 0);
    if (self) {
        self->fd = -1;
        self->max_temporal = -1;
        self->sender = Py_NewRef(Py_None);
        self->layout = Py_NewRef(Py_None);
    }
    return (PyObject *)self;
}

static int Player_traverse(Player *self, visitproc visit, void *arg)
{
    Py_VISIT(self->session);
    Py_VISIT(self->sender);
    Py_VISIT(self->layout);
    Py_VISIT(self->addr);
    return 0;
}

static int Player_clear(Player *self)
{
    Py_CLEAR(self->session);
    Py_CLEAR(self->sender);
    Py_CLEAR(self->layout);
    Py_CLEAR(self->addr);
    return 0;
}

/* A static base type: a subclass's own dealloc releases its heap type. */
static void Player_dealloc(Player *self)
{
    PyObject_GC_UnTrack(self);
    Player_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Player_get_layout(Player *self, void *closure)
{
    return Py_NewRef(self->layout);
}

static int parse_id(PyObject *item, uint8_t *out)
{
    long value = PyLong_AsLong(item);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (value < 0 || value > MAX_EXTENSION_ID) {
        PyErr_SetString(PyExc_ValueError, "extension IDs must be 0 (unused) or 1-14");
        return -1;
    }
    *out = (uint8_t)value;
    return 0;
}

static int Player_set_layout(Player *self, PyObject *value, void *closure)
{
    uint8_t mid_id = 0, abs_id = 0, transport_id = 0;
    Py_ssize_t mid_len = 0;
    const char *mid = "";
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "extension_layout cannot be deleted");
        return -1;
    }
    if (value != Py_None) {
        if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 4) {
            PyErr_SetString(PyExc_TypeError, "extension_layout is None or a 4-tuple");
            return -1;
        }
        if (parse_id(PyTuple_GET_ITEM(value, 0), &mid_id) < 0 ||
            parse_id(PyTuple_GET_ITEM(value, 2), &abs_id) < 0 ||
            parse_id(PyTuple_GET_ITEM(value, 3), &transport_id) < 0)
            return -1;
        mid = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(value, 1), &mid_len);
        if (mid == NULL)
            return -1;
        if (mid_id && (mid_len < 1 || mid_len > MAX_MID)) {
            PyErr_SetString(PyExc_ValueError, "a mid must be 1-16 bytes");
            return -1;
        }
    }
    self->mid_id = mid_id;
    self->abs_id = abs_id;
    self->transport_id = transport_id;
    self->mid_len = mid_id ? (uint8_t)mid_len : 0;
    memcpy(self->mid, mid, self->mid_len);
    Py_SETREF(self->layout, Py_NewRef(value));
    return 0;
}

static PyObject *Player_get_sender(Player *self, void *closure)
{
    return Py_NewRef(self->sender);
}

static int Player_set_sender(Player *self, PyObject *value, void *closure)
{
    if (value == NULL || (value != Py_None && !PyObject_TypeCheck(value, &SenderType))) {
        PyErr_SetString(PyExc_TypeError, "_sender is an SrtpSender or None");
        return -1;
    }
    Py_SETREF(self->sender, Py_NewRef(value));
    return 0;
}

/* An int in [0, limit], or -1 for None; -2 with an exception set. */
static int optional_int(PyObject *value, long limit, const char *what)
{
    if (value == Py_None)
        return -1;
    long number = PyLong_Check(value) ? PyLong_AsLong(value) : -1;
    if (number < 0 || number > limit) {
        if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s must be None or 0-%ld", what, limit);
        }
        return -2;
    }
    return (int)number;
}

static PyObject *optional_object(int value)
{
    return value < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(value);
}

static PyObject *Player_get_max_temporal(Player *self, void *closure)
{
    return optional_object(self->max_temporal);
}

static int Player_set_max_temporal(Player *self, PyObject *value, void *closure)
{
    int layer = value ? optional_int(value, 3, "max_temporal") : -1;
    if (layer == -2)
        return -1;
    self->max_temporal = layer;
    return 0;
}

static PyObject *Player_get_after(Player *self, void *closure)
{
    if (!self->after_pending)
        Py_RETURN_NONE;
    PyObject *picture = optional_object(self->after_picture);
    PyObject *tl0 = optional_object(self->after_tl0);
    PyObject *after = picture && tl0 ? PyTuple_Pack(2, picture, tl0) : NULL;
    Py_XDECREF(picture);
    Py_XDECREF(tl0);
    return after;
}

static int Player_set_after(Player *self, PyObject *value, void *closure)
{
    if (value == NULL || value == Py_None) {
        self->after_pending = 0;
        return 0;
    }
    if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 2) {
        PyErr_SetString(PyExc_TypeError, "vp8_after is None or (picture ID, TL0PICIDX)");
        return -1;
    }
    int picture = optional_int(PyTuple_GET_ITEM(value, 0), 0x7FFF, "a picture ID");
    int tl0 = picture == -2 ? -2 : optional_int(PyTuple_GET_ITEM(value, 1), 0xFF, "a TL0PICIDX");
    if (tl0 == -2)
        return -1;
    self->after_picture = picture;
    self->after_tl0 = tl0;
    self->after_pending = 1;
    return 0;
}

static PyMemberDef Player_members[] = {
    {"ssrc", T_UINT, offsetof(Player, ssrc), 0, NULL},
    {"payload_type", T_UINT, offsetof(Player, payload_type), 0, NULL},
    {"seq_offset", T_UINT, offsetof(Player, seq_offset), 0, NULL},
    {"ts_offset", T_UINT, offsetof(Player, ts_offset), 0, NULL},
    {"started", T_BOOL, offsetof(Player, started), 0, NULL},
    {"packets", T_ULONGLONG, offsetof(Player, packets), 0, NULL},
    {"bytes", T_ULONGLONG, offsetof(Player, bytes), 0, NULL},
    {"session", T_OBJECT_EX, offsetof(Player, session), 0, NULL},
    {"_fd", T_INT, offsetof(Player, fd), 0, NULL},
    {"first_out_seq", T_UINT, offsetof(Player, first_out_seq), 0, NULL},
    {"picture_offset", T_UINT, offsetof(Player, picture_offset), 0, NULL},
    {"tl0_offset", T_UINT, offsetof(Player, tl0_offset), 0, NULL},
    {"temporal_drops", T_ULONGLONG, offsetof(Player, temporal_drops), 0, NULL},
    {NULL},
};

static PyGetSetDef Player_getset[] = {
    {"extension_layout", (getter)Player_get_layout, (setter)Player_set_layout, NULL, NULL},
    {"_sender", (getter)Player_get_sender, (setter)Player_set_sender, NULL, NULL},
    {"max_temporal", (getter)Player_get_max_temporal, (setter)Player_set_max_temporal, NULL,
     NULL},
    {"vp8_after", (getter)Player_get_after, (setter)Player_set_after, NULL, NULL},
    {NULL},
};

static PyTypeObject PlayerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sfu.protocol._fanout.PlayerState",
    .tp_doc = "The fields of a player track the fan-out reads, kept flat in C.",
    .tp_basicsize = sizeof(Player),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = Player_new,
    .tp_traverse = (traverseproc)Player_traverse,
    .tp_clear = (inquiry)Player_clear,
    .tp_dealloc = (destructor)Player_dealloc,
    .tp_members = Player_members,
    .tp_getset = Player_getset,
};

/* ------------------------------------------------------------------------------------------ */
/* VP8 ids of simulcast layers: the rules of sfu.protocol.simulcast (vp8_ids, Vp8Continuity) and
 * SubscriberTrack.skip_packet, which the Python path runs; the bytes are the same. */

typedef struct {
    Py_ssize_t picture_at; /* offsets in the packet, -1 when absent */
    int bits;              /* of the picture ID: 7 or 15 */
    unsigned int picture;
    Py_ssize_t tl0_at;
    unsigned int tl0;
    int tid; /* the temporal layer, -1 without the T bit */
} Vp8Ids;

/* The VP8 descriptor (RFC 7741 §4.2) at p[start]: 0 when it has no extension byte (X bit) or
 * a field it announces lies past len, and the packet passes as it is. */
static int parse_vp8(const uint8_t *p, Py_ssize_t start, Py_ssize_t len, Vp8Ids *ids)
{
    if (len < start + 2 || !(p[start] & 0x80))
        return 0;
    uint8_t ext = p[start + 1];
    Py_ssize_t pos = start + 2;
    ids->picture_at = ids->tl0_at = -1;
    ids->bits = 0;
    ids->picture = ids->tl0 = 0;
    ids->tid = -1;
    if (ext & 0x80) {
        if (pos >= len || ((p[pos] & 0x80) && pos + 1 >= len))
            return 0;
        ids->picture_at = pos;
        if (p[pos] & 0x80) {
            ids->bits = 15;
            ids->picture = (unsigned int)(p[pos] & 0x7F) << 8 | p[pos + 1];
            pos += 2;
        } else {
            ids->bits = 7;
            ids->picture = p[pos];
            pos += 1;
        }
    }
    if (ext & 0x40) {
        if (pos >= len)
            return 0;
        ids->tl0_at = pos;
        ids->tl0 = p[pos];
        pos += 1;
    }
    if (ext & 0x30) {
        if (pos >= len)
            return 0;
        if (ext & 0x20)
            ids->tid = p[pos] >> 6;
    }
    return 1;
}

/* Leave out packet seq: the numbers after it close the gap, NACKs reach back no further. */
static void skip_packet(Player *player, unsigned int seq)
{
    player->seq_offset = (player->seq_offset - 1) & 0xFFFF;
    player->first_out_seq = (seq + 1 + player->seq_offset) & 0xFFFF;
    player->temporal_drops += 1;
}

/* Write the player's picture ID and TL0PICIDX into out, its copy of the packet whose ids
 * these are with everything `shift` bytes further on; the first packet after a switch sets
 * the offsets so its ids follow the last ones sent. */
static void continue_ids(Player *player, const Vp8Ids *ids, uint8_t *out, Py_ssize_t shift)
{
    if (ids->picture_at >= 0) {
        unsigned int mask = ids->bits == 15 ? 0x7FFF : 0x7F;
        if (player->after_pending && player->after_picture >= 0)
            player->picture_offset = ((unsigned int)player->after_picture + 1 - ids->picture) & mask;
        unsigned int picture = (ids->picture + player->picture_offset) & mask;
        uint8_t *at = out + ids->picture_at + shift;
        if (ids->bits == 15) {
            at[0] = (uint8_t)(0x80 | picture >> 8);
            at[1] = (uint8_t)picture;
        } else {
            at[0] = (uint8_t)picture;
        }
    }
    if (ids->tl0_at >= 0) {
        if (player->after_pending && player->after_tl0 >= 0)
            player->tl0_offset = ((unsigned int)player->after_tl0 + 1 - ids->tl0) & 0xFF;
        out[ids->tl0_at + shift] = (uint8_t)(ids->tl0 + player->tl0_offset);
    }
    player->after_pending = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* fanout */

/* Per-datagram room for one batch; shared by calls, so a call made while another has the GIL
 * released around its send (another thread) gets a room of its own. */
typedef struct {
    uint8_t *buffers;
    struct mmsghdr *messages;
    struct iovec *vectors;
    struct sockaddr_storage *names;
    int size;
    int busy;
} Batch;

static Batch shared_batch;

static void batch_free(Batch *batch)
{
    PyMem_RawFree(batch->buffers);
    PyMem_RawFree(batch->messages);
    PyMem_RawFree(batch->vectors);
    PyMem_RawFree(batch->names);
    memset(batch, 0, sizeof(*batch));
}

static int batch_reserve(Batch *batch, int size)
{
    if (batch->size >= size)
        return 0;
    batch_free(batch);
    batch->buffers = PyMem_RawMalloc((size_t)size * SLOT);
    batch->messages = PyMem_RawCalloc((size_t)size, sizeof(struct mmsghdr));
    batch->vectors = PyMem_RawMalloc((size_t)size * sizeof(struct iovec));
    batch->names = PyMem_RawMalloc((size_t)size * sizeof(struct sockaddr_storage));
    if (!batch->buffers || !batch->messages || !batch->vectors || !batch->names) {
        batch_free(batch);
        PyErr_NoMemory();
        return -1;
    }
    batch->size = size;
    return 0;
}

/* Send batch datagrams [0, count) on fd: what the kernel takes is sent; on a full buffer the
 * rest is dropped, and a datagram the kernel refuses for itself (an unreachable address) is
 * dropped alone. Each round sends or drops at least one, so this ends. */
static void flush(int fd, Batch *batch, int count, Py_ssize_t *sent, Py_ssize_t *dropped)
{
    int done = 0;
    int interrupted = 0;
    while (done < count) {
        int result;
        int error;
        Py_BEGIN_ALLOW_THREADS
        result = sendmmsg(fd, batch->messages + done, (unsigned int)(count - done), 0);
        error = errno;
        Py_END_ALLOW_THREADS
        if (result > 0) {
            done += result;
            *sent += result;
        } else if (result < 0 && error == EINTR && interrupted++ < 3) {
            continue;
        } else if (result < 0 && (error == EAGAIN || error == EWOULDBLOCK || error == ENOBUFS)) {
            *dropped += count - done;
            return;
        } else {
            *dropped += 1;
            done += 1;
        }
    }
}

/* The socket address of session.addr, cached while it is the same object: what the socket's
 * own sendto takes, a numeric (host, port, ...) tuple for IP or a path for AF_UNIX; 0 if it
 * is neither. */
static int resolve(Player *player, PyObject *addr)
{
    if (addr == player->addr)
        return 1;
    Py_CLEAR(player->addr);
    player->name_len = 0;
    memset(&player->name, 0, sizeof(player->name));
    if (PyUnicode_Check(addr)) {
        struct sockaddr_un *local = (struct sockaddr_un *)&player->name;
        Py_ssize_t size;
        const char *path = PyUnicode_AsUTF8AndSize(addr, &size);
        if (path == NULL || size < 1 || (size_t)size >= sizeof(local->sun_path)) {
            PyErr_Clear();
            return 0;
        }
        local->sun_family = AF_UNIX;
        memcpy(local->sun_path, path, (size_t)size);
        player->name_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + size + 1);
        player->addr = Py_NewRef(addr);
        return 1;
    }
    if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) < 2)
        return 0;
    PyObject *host_object = PyTuple_GET_ITEM(addr, 0);
    PyObject *port_object = PyTuple_GET_ITEM(addr, 1);
    const char *host = PyUnicode_Check(host_object) ? PyUnicode_AsUTF8(host_object) : NULL;
    long port = PyLong_Check(port_object) ? PyLong_AsLong(port_object) : -1;
    if (host == NULL || port < 0 || port > 0xFFFF) {
        PyErr_Clear();
        return 0;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)&player->name;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&player->name;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        player->name_len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        player->name_len = sizeof(*v6);
    } else {
        return 0;
    }
    player->addr = Py_NewRef(addr);
    return 1;
}

/* The session's next transport-wide sequence number, advancing it; -1 on an error. */
static long take_transport_seq(PyObject *session)
{
    if (PyObject_TypeCheck(session, &TransportType)) {
        Transport *transport = (Transport *)session;
        long seq = transport->transport_seq & 0xFFFF;
        transport->transport_seq = (unsigned int)((seq + 1) & 0xFFFF);
        return seq;
    }
    PyObject *value = PyObject_GetAttr(session, str_transport_seq);
    if (value == NULL)
        return -1;
    long seq = PyLong_AsLong(value) & 0xFFFF;
    Py_DECREF(value);
    if (PyErr_Occurred())
        return -1;
    PyObject *next = PyLong_FromLong((seq + 1) & 0xFFFF);
    int failed = next == NULL || PyObject_SetAttr(session, str_transport_seq, next) < 0;
    Py_XDECREF(next);
    return failed ? -1 : seq;
}

/* Copy the packet into out as this player gets it: its own extensions, if any, in place of
 * the publisher's (which no player gets); rewrite marker|PT, sequence number, timestamp and
 * SSRC. Returns the length, and in *transport_at where the transport-wide sequence number goes
 * (0 if nowhere). */
static Py_ssize_t rewrite(const Player *player, const uint8_t *packet, Py_ssize_t len,
                          Py_ssize_t start, const uint8_t abs_time[3], uint8_t *out,
                          Py_ssize_t *transport_at)
{
    Py_ssize_t n;
    Py_ssize_t fixed = 12 + 4 * (packet[0] & 0x0F);
    *transport_at = 0;
    if (player->layout == Py_None) {
        memcpy(out, packet, (size_t)fixed);
        out[0] &= 0xEF;
        memcpy(out + fixed, packet + start, (size_t)(len - start));
        n = fixed + (len - start);
    } else {
        memcpy(out, packet, (size_t)fixed);
        out[0] |= 0x10;
        Py_ssize_t pos = fixed + 4;
        if (player->mid_id) {
            out[pos++] = (uint8_t)(player->mid_id << 4 | (player->mid_len - 1));
            memcpy(out + pos, player->mid, player->mid_len);
            pos += player->mid_len;
        }
        if (player->abs_id) {
            out[pos++] = (uint8_t)(player->abs_id << 4 | 2);
            memcpy(out + pos, abs_time, 3);
            pos += 3;
        }
        if (player->transport_id) {
            out[pos++] = (uint8_t)(player->transport_id << 4 | 1);
            *transport_at = pos;
            pos += 2;
        }
        while ((pos - fixed) % 4)
            out[pos++] = 0;
        out[fixed] = 0xBE;
        out[fixed + 1] = 0xDE;
        store16(out + fixed + 2, (uint32_t)((pos - fixed - 4) / 4));
        memcpy(out + pos, packet + start, (size_t)(len - start));
        n = pos + (len - start);
    }
    out[1] = (uint8_t)((packet[1] & 0x80) | player->payload_type);
    store16(out + 2, ((uint32_t)(packet[2] << 8 | packet[3]) + player->seq_offset) & 0xFFFF);
    store32(out + 4, load32(packet + 4) + player->ts_offset);
    store32(out + 8, player->ssrc);
    return n;
}

/* session.addr (a new reference; None when unset), or NULL on an error. */
static PyObject *session_addr(PyObject *session)
{
    if (PyObject_TypeCheck(session, &TransportType)) {
        PyObject *addr = ((Transport *)session)->addr;
        return Py_NewRef(addr ? addr : Py_None);
    }
    return PyObject_GetAttr(session, str_addr);
}

/* Ask the cache for `size` bytes at `at`, a line at a time. */
static inline void prefetch_bytes(const void *at, size_t size)
{
    for (size_t offset = 0; offset < size; offset += 64)
        __builtin_prefetch((const uint8_t *)at + offset);
}

/* The list is walked once a packet and a player's state is seldom still cached from the last,
 * so loads are asked for ahead, each stage reading only what the one before fetched: three
 * players ahead its PlayerState, two ahead its session and SrtpSender, one ahead the sender's
 * GHASH state. */
static void prefetch_ahead(PyObject *snapshot, Py_ssize_t i, Py_ssize_t total)
{
    if (i + 3 < total)
        prefetch_bytes(PyTuple_GET_ITEM(snapshot, i + 3), sizeof(Player));
    if (i + 2 < total && PyObject_TypeCheck(PyTuple_GET_ITEM(snapshot, i + 2), &PlayerType)) {
        Player *player = (Player *)PyTuple_GET_ITEM(snapshot, i + 2);
        prefetch_bytes(player->session, sizeof(Transport));
        prefetch_bytes(player->sender, sizeof(Sender));
    }
    if (i + 1 < total && PyObject_TypeCheck(PyTuple_GET_ITEM(snapshot, i + 1), &PlayerType)) {
        Player *player = (Player *)PyTuple_GET_ITEM(snapshot, i + 1);
        if (player->sender != Py_None && ((Sender *)player->sender)->gcm)
            prefetch_bytes(((Sender *)player->sender)->gcm, GCM_STATE_BYTES);
    }
}

static PyObject *fanout(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    PyObject *players;
    double now;
    if (nargs != 3 && nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "fanout(packet, players, now[, vp8_layer])");
        return NULL;
    }
    int vp8_layer = nargs == 4 ? PyObject_IsTrue(args[3]) : 0;
    if (vp8_layer < 0)
        return NULL;
    players = args[1];
    if (!PyList_Check(players)) {
        PyErr_SetString(PyExc_TypeError, "players must be a list");
        return NULL;
    }
    now = PyFloat_AsDouble(args[2]);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const uint8_t *packet = view.buf;
    Py_ssize_t len = view.len;
    Py_ssize_t start = header_end(packet, len);
    Py_ssize_t sent = 0, dropped = 0, left = 0;
    /* What SRTP would refuse for every player is dropped for every player. */
    int carriable = start >= 0 && len <= MAX_PLAINTEXT;
    /* Read once from the publisher's packet, never from a player's rewritten copy. */
    Vp8Ids ids = {0}; /* read only when has_ids; zeroed for the compiler */
    int has_ids = vp8_layer && carriable && parse_vp8(packet, start, len, &ids);
    unsigned int seq = carriable ? (unsigned int)(packet[2] << 8 | packet[3]) : 0;
    /* abs-send-time: 24-bit 6.18 fixed-point seconds (sfu.wire.rtp.abs_send_time). */
    uint32_t abs_value = (uint32_t)((long long)(now * 262144.0) & 0xFFFFFF);
    uint8_t abs_time[3] = {(uint8_t)(abs_value >> 16), (uint8_t)(abs_value >> 8),
                           (uint8_t)abs_value};

    Batch private_batch = {0};
    Batch *batch = shared_batch.busy ? &private_batch : &shared_batch;
    /* A copy: reading session.addr may run Python code that changes the list. */
    PyObject *snapshot = PyList_AsTuple(players);
    Py_ssize_t total = snapshot ? PyTuple_GET_SIZE(snapshot) : 0;
    int failed = snapshot == NULL ||
                 batch_reserve(batch, (int)(total < MAX_BATCH ? (total ? total : 1) : MAX_BATCH));
    batch->busy = 1;
    int count = 0;
    int batch_fd = -1;
    for (Py_ssize_t i = 0; !failed && i < total; i++) {
        PyObject *item = PyTuple_GET_ITEM(snapshot, i);
        if (!PyObject_TypeCheck(item, &PlayerType)) {
            PyErr_SetString(PyExc_TypeError, "players must be PlayerState objects");
            failed = 1;
            break;
        }
        Player *player = (Player *)item;
        prefetch_ahead(snapshot, i, total);
        if (!player->started || player->fd < 0 || player->sender == Py_None ||
            player->session == NULL) {
            left++;
            continue;
        }
        if (!carriable) {
            dropped++;
            continue;
        }
        if (has_ids && player->max_temporal >= 0 && ids.tid > player->max_temporal) {
            skip_packet(player, seq);
            continue;
        }
        if (count == MAX_BATCH || (count && player->fd != batch_fd)) {
            flush(batch_fd, batch, count, &sent, &dropped);
            count = 0;
        }
        uint8_t *out = batch->buffers + (size_t)count * SLOT;
        Py_ssize_t transport_at;
        Py_ssize_t n = rewrite(player, packet, len, start, abs_time, out, &transport_at);
        if (has_ids)
            continue_ids(player, &ids, out, n - len);
        if (transport_at) {
            long seq = take_transport_seq(player->session);
            if (seq < 0) {
                failed = 1;
                break;
            }
            store16(out + transport_at, (uint32_t)seq);
        }
        PyObject *addr = session_addr(player->session);
        if (addr == NULL) {
            failed = 1;
            break;
        }
        int known = addr != Py_None;
        if (known) {
            player->packets += 1;
            player->bytes += (unsigned long long)n;
            known = resolve(player, addr);
        }
        Py_DECREF(addr);
        if (!known) {
            dropped += addr != Py_None; /* no address yet is not a drop, a bad one is */
            continue;
        }
        const char *reason = NULL;
        n = protect_in_place((Sender *)player->sender, out, n, &reason);
        if (n < 0) {
            dropped++;
            continue;
        }
        batch->names[count] = player->name;
        batch->vectors[count].iov_base = out;
        batch->vectors[count].iov_len = (size_t)n;
        struct msghdr *header = &batch->messages[count].msg_hdr;
        memset(header, 0, sizeof(*header));
        header->msg_name = &batch->names[count];
        header->msg_namelen = player->name_len;
        header->msg_iov = &batch->vectors[count];
        header->msg_iovlen = 1;
        batch_fd = player->fd;
        count++;
    }
    if (count)
        flush(batch_fd, batch, count, &sent, &dropped);
    batch->busy = 0;
    batch_free(&private_batch);
    Py_XDECREF(snapshot);
    PyBuffer_Release(&view);
    if (failed)
        return NULL;
    return Py_BuildValue("nnn", sent, dropped, left);
}

static PyMethodDef module_methods[] = {
    {"fanout", (PyCFunction)(void (*)(void))fanout, METH_FASTCALL,
     "fanout(packet, players, now[, vp8_layer]) -> (sent, dropped, left): rewrite, protect "
     "and send a plaintext RTP packet to every started player with a socket, in one "
     "sendmmsg; `left` counts the players it did not handle (not started, or no socket or "
     "SRTP sender). With vp8_layer true (a VP8 simulcast layer), each player's picture ID and "
     "TL0PICIDX are continued and frames above its max_temporal left out."},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sfu.protocol._fanout",
    .m_doc = "Compiled fan-out: SRTP protection on OpenSSL and batched sends.",
    .m_size = -1,
    .m_methods = module_methods,
};

/* AES_ENGINES: the engines' names, best first, then "openssl". */
static PyObject *engine_names(void)
{
    const AesEngine *const *engines = aes_engines();
    Py_ssize_t count = 0;
    while (engines[count])
        count++;
    PyObject *names = PyTuple_New(count + 1);
    for (Py_ssize_t i = 0; names && i <= count; i++) {
        PyObject *name = PyUnicode_FromString(i < count ? engines[i]->name : OPENSSL_ENGINE);
        if (name == NULL)
            Py_CLEAR(names);
        else
            PyTuple_SET_ITEM(names, i, name);
    }
    return names;
}

PyMODINIT_FUNC PyInit__fanout(void)
{
    if (PyType_Ready(&SenderType) < 0 || PyType_Ready(&PlayerType) < 0 ||
        PyType_Ready(&TransportType) < 0)
        return NULL;
    PyObject *pylibsrtp = PyImport_ImportModule("pylibsrtp");
    if (pylibsrtp == NULL)
        return NULL;
    PyObject *base = PyObject_GetAttrString(pylibsrtp, "Error");
    Py_DECREF(pylibsrtp);
    if (base == NULL)
        return NULL;
    /* A pylibsrtp.Error, so callers catch the same exception on either path. */
    SrtpError = PyErr_NewException("sfu.protocol._fanout.SrtpError", base, NULL);
    Py_DECREF(base);
    str_addr = PyUnicode_InternFromString("addr");
    str_transport_seq = PyUnicode_InternFromString("transport_seq");
    if (SrtpError == NULL || str_addr == NULL || str_transport_seq == NULL)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    PyObject *engines = engine_names();
    int added = engines ? PyModule_AddObjectRef(module, "AES_ENGINES", engines) : -1;
    Py_XDECREF(engines);
    if (added < 0 || PyModule_AddObjectRef(module, "SrtpError", SrtpError) < 0 ||
        PyModule_AddObjectRef(module, "SrtpSender", (PyObject *)&SenderType) < 0 ||
        PyModule_AddObjectRef(module, "PlayerState", (PyObject *)&PlayerType) < 0 ||
        PyModule_AddObjectRef(module, "TransportState", (PyObject *)&TransportType) < 0 ||
        PyModule_AddIntConstant(module, "MAX_PLAINTEXT", MAX_PLAINTEXT) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
