/* The SrtpSender type: keying from the DTLS-exported master key and salt (RFC 3711 §4.3 key
 * derivation), the choice of AES engine, and protect() for one packet at a time; the per-packet
 * work itself is in _fanout_srtp.c.
 */
#include "_fanout.h"

#include <string.h>

#include <openssl/core_names.h>

#define MASTER_KEY 16
#define CM_AUTH_KEY 20

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
        PyErr_SetString(litesfu_srtp_error, "SRTP key derivation failed");
        return -1;
    }
    if (!cipher_key(self, profile, key)) {
        PyErr_SetString(litesfu_srtp_error, "cannot set up the SRTP cipher");
        return -1;
    }
    self->profile = profile;
    if (profile == PROFILE_AEAD_AES_128_GCM)
        return 0;
    if (!derive(master, master_salt, salt_len, 0x01, auth_key, CM_AUTH_KEY)) {
        PyErr_SetString(litesfu_srtp_error, "SRTP key derivation failed");
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
        PyErr_SetString(litesfu_srtp_error, "cannot set up HMAC-SHA1");
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
    len = litesfu_protect(self, buf, len, &reason);
    if (len < 0) {
        PyErr_SetString(litesfu_srtp_error, reason);
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

PyTypeObject litesfu_sender_type = {
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
