/* VP9 SVC in the fan-out: the payload descriptor (RFC 9628 §4.2) read as sfu.wire.vp9.parse_vp9
 * reads it, and one player's layer decision and marker as sfu.protocol.svc.SvcFilter makes
 * them, so both paths send the same bytes.
 */
#include "_fanout.h"

#define MAX_PDIFFS 3

/* The descriptor at p[start]: 0 when a field it announces lies past len or it lists more
 * than three reference indices, and the packet is not forwarded. */
int litesfu_parse_vp9(const uint8_t *p, Py_ssize_t start, Py_ssize_t len, Vp9Info *info)
{
    if (start >= len)
        return 0;
    uint8_t first = p[start];
    Py_ssize_t pos = start + 1;
    if (first & 0x80) {
        if (pos >= len)
            return 0;
        pos += (p[pos] & 0x80) ? 2 : 1;
    }
    int flexible = (first & 0x10) != 0;
    info->sid = info->tid = 0;
    info->switching_up = 0;
    if (first & 0x20) {
        if (pos >= len)
            return 0;
        uint8_t layers = p[pos];
        info->tid = layers >> 5;
        info->switching_up = (layers & 0x10) != 0;
        info->sid = (layers >> 1) & 0x07;
        pos += flexible ? 1 : 2;
    }
    if ((first & 0x40) && flexible) {
        for (int count = 0;; count++) {
            if (count == MAX_PDIFFS || pos >= len)
                return 0;
            int more = p[pos] & 0x01;
            pos += 1;
            if (!more)
                break;
        }
    }
    if (first & 0x02) {
        if (pos >= len)
            return 0;
        uint8_t head = p[pos];
        pos += 1;
        if (head & 0x10)
            pos += 4 * ((head >> 5) + 1);
    }
    if (pos > len)
        return 0;
    info->begins = (first & 0x08) != 0;
    info->ends = (first & 0x04) != 0;
    info->inter_picture = (first & 0x40) != 0;
    return 1;
}

/* Whether the player gets the packet (of RTP timestamp ts), its current layers first moved
 * towards its targets at a picture's first packet (B with a timestamp not seen before):
 * down at once, spatial up at a keyframe, temporal up at a keyframe or a U bit. */
int litesfu_svc_admit(Player *player, const Vp9Info *info, uint32_t ts)
{
    if (info->begins && (long long)ts != player->svc_picture) {
        player->svc_picture = (long long)ts;
        int keyframe = !info->inter_picture;
        if (player->target_spatial < player->current_spatial || keyframe)
            player->current_spatial = player->target_spatial;
        if (player->target_temporal < player->current_temporal || keyframe)
            player->current_temporal = player->target_temporal;
        else if (info->switching_up && player->current_temporal < info->tid &&
                 info->tid <= player->target_temporal)
            player->current_temporal = info->tid;
    }
    return info->sid <= player->current_spatial && info->tid <= player->current_temporal;
}
