/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bridgeport's own connection tracking: one LRU entry per direction of a flow,
 * keyed by the tuple as it arrives, holding the rewrite to apply and where to
 * deliver. The daemon's GC expires idle entries (timeouts by protocol and TCP
 * flags) and removes both directions together.
 */
#ifndef BP_CONNTRACK_H
#define BP_CONNTRACK_H

#include "maps.h"

/* The tuple of the other direction after this entry's rewrite. */
static __always_inline void bp_ct_reverse(const struct bp_ct_key *k, const struct bp_ct_value *v, struct bp_ct_key *out)
{
	__be32 saddr = (v->flags & BP_CT_SNAT) ? v->new_saddr : k->saddr;
	__be16 sport = (v->flags & BP_CT_SNAT) ? v->new_sport : k->sport;
	__be32 daddr = (v->flags & BP_CT_DNAT) ? v->new_daddr : k->daddr;
	__be16 dport = (v->flags & BP_CT_DNAT) ? v->new_dport : k->dport;
	out->saddr = daddr;
	out->daddr = saddr;
	out->sport = dport;
	out->dport = sport;
	out->proto = k->proto;
	out->pad[0] = out->pad[1] = out->pad[2] = 0;
}

/* This direction of a TCP flow has ended (its side sent FIN or RST). */
static __always_inline int bp_ct_ended(const struct bp_ct_value *v)
{
	return (v->tcp_flags & (BP_TCP_FIN | BP_TCP_RST)) != 0;
}

/* Both sides of a TCP flow are done: FIN from each, or a RST from either. */
static __always_inline int bp_ct_closed(const struct bp_ct_value *a, const struct bp_ct_value *b)
{
	if ((a->tcp_flags | b->tcp_flags) & BP_TCP_RST)
		return 1;
	return (a->tcp_flags & BP_TCP_FIN) && (b->tcp_flags & BP_TCP_FIN);
}

static __always_inline int bp_is_syn(const struct bp_packet *p)
{
	return p->tuple.proto == IPPROTO_TCP && (p->tcp_flags & (BP_TCP_SYN | BP_TCP_ACK)) == BP_TCP_SYN;
}

/*
 * The entry of the packet's tuple. A SYN on an entry whose side already ended
 * opens a new connection on the same tuple (the client reused its port, as
 * Linux conntrack allows for a closing or TIME_WAIT tuple):
 *  - the old connection had been answered (SYN-ACK): the flow is reopened with
 *    the same rewrite, its TCP state forgotten (the server sees the same
 *    4-tuple again, which its TIME_WAIT accepts);
 *  - it never was (a retry after the server refused it): both entries go and
 *    the caller treats the packet as a new flow (NULL).
 */
static __always_inline struct bp_ct_value *bp_ct_lookup(struct bp_packet *p)
{
	struct bp_ct_value *ct = bpf_map_lookup_elem(&bp_ct, &p->tuple);
	if (!ct || !bp_is_syn(p) || (ct->flags & BP_CT_REPLY) || !bp_ct_ended(ct))
		return ct;
	struct bp_ct_key rkey;
	bp_ct_reverse(&p->tuple, ct, &rkey);
	struct bp_ct_value *rv = bpf_map_lookup_elem(&bp_ct, &rkey);
	if (rv && (rv->tcp_flags & (BP_TCP_SYN | BP_TCP_ACK)) == (BP_TCP_SYN | BP_TCP_ACK)) {
		ct->tcp_flags = 0;
		rv->tcp_flags = 0;
		return ct;
	}
	bpf_map_delete_elem(&bp_ct, &rkey);
	bpf_map_delete_elem(&bp_ct, &p->tuple);
	return 0;
}

/* Marks the entry as used now and remembers the TCP flags seen. */
static __always_inline void bp_ct_touch(struct bp_ct_value *v, struct bp_packet *p)
{
	__u64 now = bpf_ktime_get_ns();
	/* Writing on every packet would bounce the cache line between CPUs. */
	if (now - v->last_seen > 1000000000ULL / 4)
		v->last_seen = now;
	/* Flags only accumulate, so a lost race costs one packet's worth of news. */
	if (p->tcp_flags & ~v->tcp_flags)
		v->tcp_flags |= p->tcp_flags;
}

/*
 * Applies an entry's rewrite to the packet. Returns 0, or -1 when the packet
 * could not be changed (the caller drops it: half-rewritten is worse).
 */
static __always_inline int bp_ct_apply(struct __sk_buff *skb, struct bp_packet *p, const struct bp_ct_value *v)
{
	/* A later fragment has no L4 header: only its addresses change (the first fragment carries the L4 checksum). */
	int ports = !p->later_fragment;
	if (v->flags & BP_CT_SNAT) {
		if (bp_rewrite_addr(skb, p, IP_SRC_OFF, p->tuple.saddr, v->new_saddr))
			return -1;
		if (ports && (p->tuple.proto != IPPROTO_ICMP || p->icmp_type == ICMP_ECHO)) {
			if (bp_rewrite_port(skb, p, bp_sport_off(p), p->tuple.sport, v->new_sport))
				return -1;
		}
	}
	if (v->flags & BP_CT_DNAT) {
		if (bp_rewrite_addr(skb, p, IP_DST_OFF, p->tuple.daddr, v->new_daddr))
			return -1;
		if (ports && (p->tuple.proto != IPPROTO_ICMP || p->icmp_type == ICMP_ECHOREPLY)) {
			if (bp_rewrite_port(skb, p, bp_dport_off(p), p->tuple.dport, v->new_dport))
				return -1;
		}
	}
	return 0;
}

/*
 * Counts a packet of a tracked flow: per published port (`in` toward the
 * container, `out` its replies) and per masquerading network (`out` leaving,
 * `in` the replies). `net_id` is the container's network when the caller
 * knows it (0: looked up from the entry's endpoint).
 */
static __always_inline void bp_count_flow(const struct bp_ct_value *ct, __u32 len, __u32 net_id)
{
	int reply = (ct->flags & BP_CT_REPLY) != 0;
	if (ct->flags & BP_CT_PUBLISHED)
		bp_count_port(&ct->origin, reply ? BP_DIR_OUT : BP_DIR_IN, len);
	if (ct->flags & BP_CT_MASQUERADE) {
		if (!net_id) {
			__u32 ifindex = ct->ifindex;
			struct bp_endpoint *ep = bpf_map_lookup_elem(&bp_endpoint_by_if, &ifindex);
			if (ep)
				net_id = ep->network_id;
		}
		if (net_id)
			bp_count_masq(net_id, reply ? BP_DIR_IN : BP_DIR_OUT, len);
	}
}

/*
 * Fragments. The first fragment of a datagram is judged like a whole packet;
 * its tuple is remembered under the datagram's identity so the later fragments
 * (no L4 header) get their ports back and take the same path: the same
 * conntrack entry, rewrite (addresses only) and delivery. A later fragment that
 * arrives before its first, or after the entry was evicted, has no ports:
 * callers give it only what needs none. Returns 1 when the ports are known.
 */
static __always_inline int bp_frag_ports(struct bp_packet *p)
{
	if (!p->is_fragment)
		return 1;
	struct bp_frag_key k = { .saddr = p->tuple.saddr, .daddr = p->tuple.daddr, .id = p->ip_id, .proto = p->tuple.proto };
	if (!p->later_fragment) {
		bpf_map_update_elem(&bp_frags, &k, &p->tuple, BPF_ANY);
		return 1;
	}
	struct bp_ct_key *first = bpf_map_lookup_elem(&bp_frags, &k);
	if (!first)
		return 0;
	p->tuple.sport = first->sport;
	p->tuple.dport = first->dport;
	return 1;
}

/* Creates both directions of a flow. Returns 0, or -1 when the table refused (full). */
static __always_inline int bp_ct_create(struct bp_packet *p, struct bp_ct_value *orig, struct bp_ct_value *reply)
{
	struct bp_ct_key rkey;
	__u64 now = bpf_ktime_get_ns();
	orig->last_seen = now;
	reply->last_seen = now;
	orig->tcp_flags = p->tcp_flags;
	reply->tcp_flags = 0;
	bp_ct_reverse(&p->tuple, orig, &rkey);
	if (bpf_map_update_elem(&bp_ct, &rkey, reply, BPF_ANY))
		return -1;
	if (bpf_map_update_elem(&bp_ct, &p->tuple, orig, BPF_ANY)) {
		bpf_map_delete_elem(&bp_ct, &rkey);
		return -1;
	}
	return 0;
}

#endif
