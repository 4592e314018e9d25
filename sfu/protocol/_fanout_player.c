/* The PlayerState type: the per-player fields the fan-out reads, flat in C (a base of
 * SubscriberTrack), with the checks Python's writes to them go through.
 */
#include "_fanout.h"

#include <string.h>

#include <structmember.h>

#define MAX_EXTENSION_ID 14

static PyObject *Player_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Player *self = (Player *)type->tp_alloc(type, 0);
    if (self) {
        self->fd = -1;
        self->max_temporal = -1;
        self->target_spatial = self->target_temporal = 7; /* svc.ALL_LAYERS */
        self->current_spatial = self->current_temporal = -1;
        self->svc_picture = -1;
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
    if (value == NULL ||
        (value != Py_None && !PyObject_TypeCheck(value, &litesfu_sender_type))) {
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
    {"target_spatial", T_INT, offsetof(Player, target_spatial), 0, NULL},
    {"target_temporal", T_INT, offsetof(Player, target_temporal), 0, NULL},
    {"current_spatial", T_INT, offsetof(Player, current_spatial), 0, NULL},
    {"current_temporal", T_INT, offsetof(Player, current_temporal), 0, NULL},
    {"svc_picture", T_LONGLONG, offsetof(Player, svc_picture), 0, NULL},
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

PyTypeObject litesfu_player_type = {
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

