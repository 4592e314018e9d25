/* The TransportState type, the per-peer fields the fan-out reads for every packet (a base of
 * PeerSession and of the relay's PlainSession), and the fan-out's reads of any session: flat
 * fields for a TransportState, attributes by name for anything else.
 */
#include "_fanout.h"

#include <structmember.h>

static PyObject *str_addr;
static PyObject *str_transport_seq;

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

PyTypeObject litesfu_transport_type = {
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

int litesfu_transport_names(void)
{
    str_addr = PyUnicode_InternFromString("addr");
    str_transport_seq = PyUnicode_InternFromString("transport_seq");
    return str_addr && str_transport_seq ? 0 : -1;
}

/* The session's next transport-wide sequence number, advancing it; -1 on an error. */
long litesfu_take_transport_seq(PyObject *session)
{
    if (PyObject_TypeCheck(session, &litesfu_transport_type)) {
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

/* session.addr (a new reference; None when unset), or NULL on an error. */
PyObject *litesfu_session_addr(PyObject *session)
{
    if (PyObject_TypeCheck(session, &litesfu_transport_type)) {
        PyObject *addr = ((Transport *)session)->addr;
        return Py_NewRef(addr ? addr : Py_None);
    }
    return PyObject_GetAttr(session, str_addr);
}
