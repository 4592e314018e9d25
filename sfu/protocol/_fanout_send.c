/* fanout(): one RTP packet rewritten, protected and sent to every player, the datagrams for
 * players on one socket going out together in one sendmmsg; with the batches that hold them
 * and the socket addresses cached per player.
 */
#include "_fanout.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

/* About what OpenSSL 3's GCM128_CONTEXT takes (opaque to us): its counters, H and Htable. */
#define GCM_STATE_BYTES 448
/* The kernel's limit on datagrams per sendmmsg (UIO_MAXIOV). */
#define MAX_BATCH 1024

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

static inline int is_player(PyObject *object)
{
    return PyObject_TypeCheck(object, &litesfu_player_type);
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
    if (i + 2 < total && is_player(PyTuple_GET_ITEM(snapshot, i + 2))) {
        Player *player = (Player *)PyTuple_GET_ITEM(snapshot, i + 2);
        prefetch_bytes(player->session, sizeof(Transport));
        prefetch_bytes(player->sender, sizeof(Sender));
    }
    if (i + 1 < total && is_player(PyTuple_GET_ITEM(snapshot, i + 1))) {
        Player *player = (Player *)PyTuple_GET_ITEM(snapshot, i + 1);
        if (player->sender != Py_None && ((Sender *)player->sender)->gcm)
            prefetch_bytes(((Sender *)player->sender)->gcm, GCM_STATE_BYTES);
    }
}

PyObject *litesfu_fanout(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    PyObject *players;
    double now;
    if (nargs != 3 && nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "fanout(packet, players, now[, payload_rule])");
        return NULL;
    }
    /* fastpath.PAYLOAD_AS_IS, PAYLOAD_VP8_IDS or PAYLOAD_VP9_SVC (a bool reads as 0 or 1) */
    long rule = nargs == 4 ? PyLong_AsLong(args[3]) : RULE_AS_IS;
    if (rule == -1 && PyErr_Occurred())
        return NULL;
    if (rule < RULE_AS_IS || rule > RULE_VP9_SVC) {
        PyErr_SetString(PyExc_ValueError, "payload_rule must be 0, 1 or 2");
        return NULL;
    }
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
    int has_ids = rule == RULE_VP8_IDS && carriable && litesfu_parse_vp8(packet, start, len, &ids);
    Vp9Info svc = {0};
    int is_svc = rule == RULE_VP9_SVC && carriable;
    if (is_svc && !litesfu_parse_vp9(packet, start, len, &svc))
        carriable = 0; /* a descriptor past the packet's end: no player gets it */
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
        if (!is_player(item)) {
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
            litesfu_skip_packet(player, seq);
            continue;
        }
        if (is_svc && !litesfu_svc_admit(player, &svc, load32(packet + 4))) {
            litesfu_skip_packet(player, seq);
            continue;
        }
        if (count == MAX_BATCH || (count && player->fd != batch_fd)) {
            flush(batch_fd, batch, count, &sent, &dropped);
            count = 0;
        }
        uint8_t *out = batch->buffers + (size_t)count * SLOT;
        Py_ssize_t transport_at;
        Py_ssize_t n = litesfu_rewrite(player, packet, len, start, abs_time, out, &transport_at);
        if (has_ids)
            litesfu_continue_ids(player, &ids, out, n - len);
        if (is_svc && svc.ends && svc.sid == player->current_spatial)
            out[1] |= 0x80; /* the end of the picture as this player gets it */
        if (transport_at) {
            long seq = litesfu_take_transport_seq(player->session);
            if (seq < 0) {
                failed = 1;
                break;
            }
            store16(out + transport_at, (uint32_t)seq);
        }
        PyObject *addr = litesfu_session_addr(player->session);
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
        n = litesfu_protect((Sender *)player->sender, out, n, &reason);
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
