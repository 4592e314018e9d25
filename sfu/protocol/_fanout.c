/* The module sfu.protocol._fanout: the forwarding hot path in C, SRTP protection and a fan-out
 * that rewrites, protects and sends one RTP packet to every player with one sendmmsg. This file
 * defines the module and puts its types, fanout() and constants on it; the rest is in:
 *
 *   _fanout.h            what the files share: sizes, object layouts, internal functions
 *   _fanout_sender.c     the SrtpSender type: keying, engine choice, protect()
 *   _fanout_srtp.c       SRTP protection of one packet: index, AES-CM/HMAC or AES-GCM
 *   _fanout_transport.c  the TransportState type, and reading any session's addr/transport_seq
 *   _fanout_player.c     the PlayerState type
 *   _fanout_rewrite.c    one player's copy of a packet: header, extensions, VP8 ids
 *   _fanout_send.c       fanout(): the loop over players and the batched sendmmsg
 *
 * AES runs on the CPU's instructions (_aes.c) with OpenSSL's GHASH for GCM, or all on OpenSSL's
 * EVP API where they are missing.
 *
 * SRTP follows RFC 3711 (AES-CM keystream §4.1.1, HMAC-SHA1 §4.2, key derivation §4.3, packet
 * index estimation Appendix A) and RFC 7714 (AEAD_AES_128_GCM, IV §8.1, AAD §8.2). Sender-side
 * state mirrors what libsrtp keeps for an outbound stream with repeats allowed, so the bytes
 * are the same as pylibsrtp's for the same keys and packets; tests/unit/test_fanout.py checks.
 */
#include "_fanout.h"

PyObject *litesfu_srtp_error;

static PyMethodDef module_methods[] = {
    {"fanout", (PyCFunction)(void (*)(void))litesfu_fanout, METH_FASTCALL,
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
    if (PyType_Ready(&litesfu_sender_type) < 0 || PyType_Ready(&litesfu_player_type) < 0 ||
        PyType_Ready(&litesfu_transport_type) < 0)
        return NULL;
    PyObject *pylibsrtp = PyImport_ImportModule("pylibsrtp");
    if (pylibsrtp == NULL)
        return NULL;
    PyObject *base = PyObject_GetAttrString(pylibsrtp, "Error");
    Py_DECREF(pylibsrtp);
    if (base == NULL)
        return NULL;
    /* A pylibsrtp.Error, so callers catch the same exception on either path. */
    litesfu_srtp_error = PyErr_NewException("sfu.protocol._fanout.SrtpError", base, NULL);
    Py_DECREF(base);
    if (litesfu_srtp_error == NULL || litesfu_transport_names() < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    PyObject *engines = engine_names();
    int added = engines ? PyModule_AddObjectRef(module, "AES_ENGINES", engines) : -1;
    Py_XDECREF(engines);
    if (added < 0 || PyModule_AddObjectRef(module, "SrtpError", litesfu_srtp_error) < 0 ||
        PyModule_AddObjectRef(module, "SrtpSender", (PyObject *)&litesfu_sender_type) < 0 ||
        PyModule_AddObjectRef(module, "PlayerState", (PyObject *)&litesfu_player_type) < 0 ||
        PyModule_AddObjectRef(module, "TransportState", (PyObject *)&litesfu_transport_type) < 0 ||
        PyModule_AddIntConstant(module, "MAX_PLAINTEXT", MAX_PLAINTEXT) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
