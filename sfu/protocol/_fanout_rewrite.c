/* One player's copy of a forwarded packet: its own header extensions, payload type, sequence
 * number, timestamp and SSRC in place of the publisher's, and for a VP8 simulcast layer its own
 * picture ID and TL0PICIDX, continued across layer switches.
 */
#include "_fanout.h"

#include <string.h>

/* Copy the packet into out as this player gets it: its own extensions, if any, in place of
 * the publisher's (which no player gets); rewrite marker|PT, sequence number, timestamp and
 * SSRC. Returns the length, and in *transport_at where the transport-wide sequence number goes
 * (0 if nowhere). */
Py_ssize_t litesfu_rewrite(const Player *player, const uint8_t *packet, Py_ssize_t len,
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

/* ------------------------------------------------------------------------------------------ */
/* VP8 ids of simulcast layers: the rules of sfu.protocol.simulcast (vp8_ids, Vp8Continuity) and
 * SubscriberTrack.skip_packet, which the Python path runs; the bytes are the same. */

/* The VP8 descriptor (RFC 7741 §4.2) at p[start]: 0 when it has no extension byte (X bit) or
 * a field it announces lies past len, and the packet passes as it is. */
int litesfu_parse_vp8(const uint8_t *p, Py_ssize_t start, Py_ssize_t len, Vp8Ids *ids)
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
void litesfu_skip_packet(Player *player, unsigned int seq)
{
    player->seq_offset = (player->seq_offset - 1) & 0xFFFF;
    player->first_out_seq = (seq + 1 + player->seq_offset) & 0xFFFF;
    player->temporal_drops += 1;
}

/* Write the player's picture ID and TL0PICIDX into out, its copy of the packet whose ids
 * these are with everything `shift` bytes further on; the first packet after a switch sets
 * the offsets so its ids follow the last ones sent. */
void litesfu_continue_ids(Player *player, const Vp8Ids *ids, uint8_t *out, Py_ssize_t shift)
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
