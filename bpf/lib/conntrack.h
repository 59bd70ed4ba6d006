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

/*
 * The other direction's entry of the flow that owns (k, v), its key in pk; NULL
 * when the pair is broken: the other key is gone, or it holds another flow's
 * entry (one that leads back elsewhere). An entry whose partner is not its own
 * is stale: no packet is translated with another flow's state.
 */
static __always_inline struct bp_ct_value *bp_ct_partner(const struct bp_ct_key *k, const struct bp_ct_value *v, struct bp_ct_key *pk)
{
	bp_ct_reverse(k, v, pk);
	struct bp_ct_value *pv = bpf_map_lookup_elem(&bp_ct, pk);
	if (!pv)
		return 0;
	/* bp_ct_reverse(pk, pv) == k, field by field (no key on the stack: callers' frames are tight). */
	int snat = (pv->flags & BP_CT_SNAT) != 0, dnat = (pv->flags & BP_CT_DNAT) != 0;
	if ((dnat ? pv->new_daddr : pk->daddr) != k->saddr || (snat ? pv->new_saddr : pk->saddr) != k->daddr)
		return 0;
	if ((dnat ? pv->new_dport : pk->dport) != k->sport || (snat ? pv->new_sport : pk->sport) != k->dport)
		return 0;
	return pv;
}

/* This direction of a TCP flow has ended (its side sent FIN or RST). */
static __always_inline int bp_ct_ended(const struct bp_ct_value *v)
{
	return (v->tcp_flags & (BP_TCP_FIN | BP_TCP_RST)) != 0;
}

/* A TCP flow is done, by the flags of one direction and of the other: FIN from each, or a RST from either. */
static __always_inline int bp_tcp_closed(__u8 a, __u8 b)
{
	if ((a | b) & BP_TCP_RST)
		return 1;
	return (a & BP_TCP_FIN) && (b & BP_TCP_FIN);
}

static __always_inline int bp_is_syn(const struct bp_packet *p)
{
	return p->tuple.proto == IPPROTO_TCP && (p->tcp_flags & (BP_TCP_SYN | BP_TCP_ACK)) == BP_TCP_SYN;
}

/* Has either side of the entry's TCP flow sent FIN or RST (this packet's flags included)? */
static __always_inline int bp_ct_closing(const struct bp_ct_value *v, const struct bp_packet *p)
{
	return ((v->tcp_flags | v->peer_flags | p->tcp_flags) & (BP_TCP_FIN | BP_TCP_RST)) != 0;
}

__noinline int bp_tcp_stamp(struct __sk_buff *skb, __u32 l4_off, struct bp_tcp_stamp *out);

/*
 * A packet of a closing TCP flow tells the other direction's entry pv what
 * this side has seen (peer_flags), and, from the original side's first FIN
 * on, what the far end's TIME_WAIT will know of that side: its highest TSval
 * and the sequence number after its FIN (ts_last, seq_end of the reply
 * entry). The port search then judges a closed flow's reply tuple from that
 * one entry (bp_ct_claim).
 */
static __always_inline void bp_ct_mirror(struct __sk_buff *skb, struct bp_packet *p, const struct bp_ct_value *v, struct bp_ct_value *pv)
{
	__u8 seen = v->tcp_flags | p->tcp_flags;
	/* Written only when it changes: the line is shared with the other direction's CPU. */
	if (seen & ~pv->peer_flags)
		pv->peer_flags |= seen;
	if ((v->flags & BP_CT_REPLY) || !(seen & BP_TCP_FIN) || p->is_fragment)
		return;
	struct bp_tcp_stamp s = {};
	if (bp_tcp_stamp(skb, p->l4_off, &s))
		return;
	if (!pv->seq_end || (__s32)(s.seq_end - pv->seq_end) > 0)
		pv->seq_end = s.seq_end;
	if (s.has_ts && (!(pv->peer_flags & BP_TCP_TS) || (__s32)(s.tsval - pv->ts_last) > 0)) {
		pv->ts_last = s.tsval;
		pv->peer_flags |= BP_TCP_TS;
	}
}

/*
 * The entry of the packet's tuple, for TCP checked against the flow it lands
 * on where that matters:
 *  - a packet of an established flow: the entry, nothing more read;
 *  - a packet of a closing flow (FIN or RST from either side): the other
 *    direction's entry is read, told what this side sent (bp_ct_mirror) and,
 *    for the original direction, must still be this flow's: once the flow
 *    closed, a new flow may have taken the reply tuple over (bp_ct_claim,
 *    which leaves the old original entry as it was), and the old entry then
 *    is stale: no packet is translated with another flow's state (NULL);
 *  - a SYN in the original direction:
 *    - the pair is broken (the reply tuple went to another flow, or was
 *      evicted): NULL, and the new flow is written over the stale entry
 *      (bp_ct_create);
 *    - the flow is live: a retransmitted SYN, same entry;
 *    - this side ended and the old connection had been answered (SYN-ACK):
 *      the client reused its own port, as Linux conntrack allows for a
 *      closing or TIME_WAIT tuple; the flow is reopened with the same
 *      rewrite, its TCP state forgotten (the far end sees the same 4-tuple,
 *      with the timestamps of the same socket pair, which its TIME_WAIT
 *      accepts);
 *    - it never was (a retry after the server refused it): its reply entry
 *      goes and the SYN starts a new flow (NULL).
 */
static __always_inline struct bp_ct_value *bp_ct_lookup(struct __sk_buff *skb, struct bp_packet *p)
{
	struct bp_ct_value *ct = bpf_map_lookup_elem(&bp_ct, &p->tuple);
	if (!ct || p->tuple.proto != IPPROTO_TCP)
		return ct;
	int syn = bp_is_syn(p);
	if (!syn && !bp_ct_closing(ct, p))
		return ct;
	struct bp_ct_key rkey;
	struct bp_ct_value *rv;
	if (ct->flags & BP_CT_REPLY) {
		/* Only news is worth the other entry's read: the far end's own FIN or RST. */
		if (!syn && (p->tcp_flags & ~ct->tcp_flags & (BP_TCP_FIN | BP_TCP_RST))) {
			rv = bp_ct_partner(&p->tuple, ct, &rkey);
			if (rv)
				bp_ct_mirror(skb, p, ct, rv);
		}
		return ct;
	}
	/* A masqueraded socket's new connection from a port whose flow ended: a
	 * new flow (bp_ct_create tries the old NAT port first, and takes it
	 * back when the far end would accept the SYN), without reading here
	 * what that try reads anyway. */
	if (syn && (ct->flags & BP_CT_MASQUERADE) && bp_ct_ended(ct))
		return 0;
	rv = bp_ct_partner(&p->tuple, ct, &rkey);
	if (!rv)
		return 0;
	if (!syn) {
		bp_ct_mirror(skb, p, ct, rv);
		return ct;
	}
	if (!bp_ct_ended(ct))
		return ct;
	if ((rv->tcp_flags & (BP_TCP_SYN | BP_TCP_ACK)) == (BP_TCP_SYN | BP_TCP_ACK)) {
		ct->tcp_flags = 0;
		ct->peer_flags = 0;
		rv->tcp_flags = 0;
		rv->peer_flags = 0;
		rv->ts_last = 0;
		rv->seq_end = 0;
		return ct;
	}
	bpf_map_delete_elem(&bp_ct, &rkey);
	return 0;
}

/*
 * Is (k, v) an original direction whose reply tuple is no longer its own (its
 * flow closed and a new flow took the tuple over)? Read for the rare packets
 * that do not go through bp_ct_lookup (ICMP errors).
 */
static __always_inline int bp_ct_stale(const struct bp_ct_key *k, const struct bp_ct_value *v)
{
	if (k->proto != IPPROTO_TCP || (v->flags & BP_CT_REPLY) || !((v->tcp_flags | v->peer_flags) & (BP_TCP_FIN | BP_TCP_RST)))
		return 0;
	struct bp_ct_key pk;
	return bp_ct_partner(k, v, &pk) == 0;
}

/* The walk over a segment's TCP options (bpf_loop: the callback is verified once). */
struct bp_opt_walk {
	__u32 off;
	__u32 len;
	__u32 tsval;
	__u32 has_ts;
};

static long bp_opt_step(__u64 i, void *ctx)
{
	struct bp_opt_walk *w = ctx;
	__u32 zero = 0;
	struct bp_scratch *sc = bpf_map_lookup_elem(&bp_scratch, &zero);
	if (!sc)
		return 1;
	/* Every index masked to the 64-byte buffer: each read is in bounds. */
	__u8 *opts = sc->tcp_opts;
	/* Bounded (and stored masked) so the verifier's walk of the callback converges. */
	__u32 off = w->off & 63;
	if (off + 1 >= w->len)
		return 1;
	__u8 kind = opts[off & 63];
	if (kind == 0) /* end of options */
		return 1;
	if (kind == 1) { /* NOP */
		w->off = off + 1;
		return 0;
	}
	__u8 len = opts[(off + 1) & 63];
	if (len < 2)
		return 1;
	if (kind == 8 && len == 10 && off + 10 <= w->len) {
		w->tsval = ((__u32)opts[(off + 2) & 63] << 24) | ((__u32)opts[(off + 3) & 63] << 16) | ((__u32)opts[(off + 4) & 63] << 8) |
			   opts[(off + 5) & 63];
		w->has_ts = 1;
		return 1;
	}
	if (off + len >= w->len)
		return 1;
	w->off = (off + len) & 63;
	return 0;
}

/*
 * Reads the sequence number and the timestamp option of the TCP segment at
 * l4_off. Returns 0, or -1 when the header cannot be read. A global function:
 * verified once, not at every call site.
 */
__noinline int bp_tcp_stamp(struct __sk_buff *skb, __u32 l4_off, struct bp_tcp_stamp *out)
{
	if (!skb || !out)
		return -1;
	__u32 zero = 0;
	struct bp_scratch *sc = bpf_map_lookup_elem(&bp_scratch, &zero);
	__be16 tot_len;
	if (!sc || l4_off < ETH_HLEN + 20 || l4_off > ETH_HLEN + 60)
		return -1;
	struct tcphdr *th = &sc->tcp;
	if (bpf_skb_load_bytes(skb, l4_off, th, sizeof(*th)) || bpf_skb_load_bytes(skb, ETH_HLEN + 2, &tot_len, sizeof(tot_len)))
		return -1;
	__u32 doff = th->doff * 4;
	__u32 ip_len = bpf_ntohs(tot_len);
	__u32 hdrs = l4_off - ETH_HLEN + doff;
	if (doff < sizeof(*th) || ip_len < hdrs)
		return -1;
	out->seq = bpf_ntohl(th->seq);
	out->seq_end = out->seq + (ip_len - hdrs) + th->syn + th->fin;
	out->has_ts = 0;
	out->tsval = 0;
	__u32 optlen = doff - sizeof(*th);
	if (optlen == 0 || optlen > 40)
		return 0;
	if (bpf_skb_load_bytes(skb, l4_off + sizeof(*th), sc->tcp_opts, optlen))
		return 0;
	struct bp_opt_walk w = { .off = 0, .len = optlen };
	bpf_loop(40, bp_opt_step, &w, 0);
	out->tsval = w.tsval;
	out->has_ts = w.has_ts;
	return 0;
}

/* The stamp of a new flow's first packet: filled for a TCP SYN only. */
static __always_inline void bp_syn_stamp(struct __sk_buff *skb, const struct bp_packet *p, struct bp_tcp_stamp *s)
{
	s->is_syn = 0;
	s->has_ts = 0;
	s->seq = s->seq_end = s->tsval = 0;
	if (bp_is_syn(p) && !p->is_fragment && bp_tcp_stamp(skb, p->l4_off, s) == 0)
		s->is_syn = 1;
}

/*
 * Would the far end of a closed flow accept this SYN on the same 4-tuple? The
 * side that closed first holds the tuple in TIME_WAIT, where Linux takes a new
 * SYN only when PAWS passes and its timestamp is newer than the last one seen
 * (or, without timestamps, its sequence number is after the old connection's
 * last). Linux clients offset their timestamps per 4-tuple, so a SYN from
 * another source port than the old connection's has a random chance of
 * looking older: that SYN must not inherit the tuple. A reset leaves no
 * TIME_WAIT. `r` is the old flow's reply entry: it holds what the far end
 * knows of the original side (bp_ct_mirror).
 */
static __always_inline int bp_tw_accepts(const struct bp_ct_value *r, const struct bp_tcp_stamp *s)
{
	if ((r->tcp_flags | r->peer_flags) & BP_TCP_RST)
		return 1;
	if (s->has_ts && (r->peer_flags & BP_TCP_TS)) {
		__s32 newer = (__s32)(s->tsval - r->ts_last);
		if (newer < 0)
			return 0;
		if (newer > 0)
			return 1;
	}
	return (__s32)(s->seq - r->seq_end) > 0;
}

/*
 * Takes the reply tuple rkey for a new flow, writing its reply entry there.
 * When another flow holds rkey:
 *  - it is the reply entry of a closed TCP flow (FIN both ways, or a RST, as
 *    the entry itself knows: bp_ct_mirror), the new flow starts with a SYN
 *    and the far end would accept that SYN (bp_tw_accepts): taken over,
 *    judged from that one entry. Under connection churn every port of a
 *    masquerade range is held by such a flow, and each try of a port search
 *    costs one random read of the table. The reply entry is rewritten in
 *    place for the new flow; the old original entry is left as it was: its
 *    flow has closed, so its packets check their reply entry (bp_ct_lookup)
 *    and find it another flow's. It stays until its tuple's next flow is
 *    written over it (bp_ct_create) or the GC expires it. A takeover thus
 *    costs no delete and no insert into the LRU;
 *  - a closed flow whose far end would refuse the SYN: refused;
 *  - otherwise its pair is read: broken (the holder is stale, see
 *    bp_ct_partner): taken over; a live flow's: refused.
 * On a refusal the caller looks for another port. A free rkey is written with
 * BPF_NOEXIST and a held one taken over by a compare-and-swap: either succeeds
 * on one CPU only, so two new flows never share it. Returns 0 when rkey is the
 * new flow's, 1 when refused.
 * A global function: verified once, not once per try of the caller's loop.
 */
__noinline int bp_ct_claim(struct bp_ct_key *rkey, struct bp_ct_value *reply, struct bp_tcp_stamp *syn)
{
	if (!rkey || !reply || !syn)
		return 1;
	/* Look before writing: an LRU map takes a free node (evicting an entry when
	 * the table is full) before it finds the key exists, so a failing
	 * BPF_NOEXIST write still costs an eviction. */
	struct bp_ct_value *old = bpf_map_lookup_elem(&bp_ct, rkey);
	if (!old)
		return bpf_map_update_elem(&bp_ct, rkey, reply, BPF_NOEXIST) ? 1 : 0;
	/* Read before judging the holder: the takeover below succeeds only if
	 * nothing wrote it since. */
	__u64 seen = old->last_seen;
	if ((old->flags & BP_CT_REPLY) && rkey->proto == IPPROTO_TCP && bp_tcp_closed(old->tcp_flags, old->peer_flags)) {
		if (!syn->is_syn || !bp_tw_accepts(old, syn))
			return 1;
	} else {
		__u32 zero = 0;
		struct bp_scratch *sc = bpf_map_lookup_elem(&bp_scratch, &zero);
		if (!sc || bp_ct_partner(rkey, old, &sc->okey))
			return 1;
	}
	/* Taken over in place: the one CPU whose compare-and-swap moves last_seen
	 * on owns the entry (another new flow on the same tuple, or a packet of
	 * the old flow touching it meanwhile, makes it fail: refused). */
	if (__sync_val_compare_and_swap(&old->last_seen, seen, reply->last_seen) != seen)
		return 1;
	__builtin_memcpy(old, reply, sizeof(*reply));
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
		if (!net_id)
			net_id = ct->net_id;
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

#define BP_REMAP_TRIES 32

/* Where a port search starts: a hash of the flow's own tuple, so the same tuple tends to get the same port back. */
static __always_inline __u32 bp_port_hash(const struct bp_ct_key *k)
{
	__u32 h = (k->saddr ^ k->daddr ^ ((__u32)k->sport << 16 | k->dport)) * 2654435761U;
	return h ^ (h >> 16);
}

/* The ports a new flow may be given: (first << 32) | count, host byte order. */
#define BP_PORTS(first, count) (((__u64)(first) << 32) | (count))
/* A clash on a flow that keeps its addresses: another source port, anywhere outside the well-known ports (as netfilter's NAT picks). */
#define BP_CLASH_PORTS BP_PORTS(1024, 65536 - 1024)

/*
 * The scratch space a new flow is built in, both entries zeroed and the
 * packet's SYN stamp read (here, not in bp_ct_create: the frames of a call
 * chain must fit 512 bytes together): fill sc->orig and sc->reply, then
 * bp_ct_create.
 */
static __always_inline struct bp_scratch *bp_new_flow(struct __sk_buff *skb, const struct bp_packet *p)
{
	__u32 zero = 0;
	struct bp_scratch *sc = bpf_map_lookup_elem(&bp_scratch, &zero);
	if (sc) {
		__builtin_memset(&sc->orig, 0, sizeof(sc->orig));
		__builtin_memset(&sc->reply, 0, sizeof(sc->reply));
		bp_syn_stamp(skb, p, &sc->syn);
	}
	return sc;
}

/*
 * A new flow through a published port, in sc (bp_new_flow): DNAT into the
 * container; its replies get the host IP:port back as their source and are
 * delivered into reply_ifindex (a container reaching the port: hairpin) or
 * routed (0). The origin names the publication (its host IP, 0.0.0.0 for
 * every address).
 */
static __always_inline void bp_published_flow(struct bp_scratch *sc, const struct bp_packet *p, const struct bp_published_value *pub, __be32 pub_ip,
					      __u32 reply_ifindex)
{
	sc->orig.flags = BP_CT_DNAT | BP_CT_PUBLISHED;
	sc->orig.new_daddr = pub->container_ip;
	sc->orig.new_dport = pub->container_port;
	sc->orig.ifindex = pub->ifindex;
	sc->orig.origin.host_ip = pub_ip;
	sc->orig.origin.host_port = p->tuple.dport;
	sc->orig.origin.proto = p->tuple.proto;
	sc->reply.flags = BP_CT_SNAT | BP_CT_REPLY | BP_CT_PUBLISHED;
	sc->reply.new_saddr = p->tuple.daddr;
	sc->reply.new_sport = p->tuple.dport;
	sc->reply.ifindex = reply_ifindex;
	sc->reply.origin = sc->orig.origin;
}

/*
 * A container's new flow out of network net_id, masqueraded to nat_ip
 * (bp_ct_create picks the port); replies are delivered into ifindex. Both
 * entries name the network, so the uplink counts a reply without looking the
 * endpoint up.
 */
static __always_inline void bp_masquerade_flow(struct bp_scratch *sc, const struct bp_packet *p, __be32 nat_ip, __u32 ifindex, __u32 net_id)
{
	sc->orig.flags = BP_CT_SNAT | BP_CT_MASQUERADE;
	sc->orig.new_saddr = nat_ip;
	sc->orig.net_id = net_id;
	sc->reply.flags = BP_CT_DNAT | BP_CT_REPLY | BP_CT_MASQUERADE;
	sc->reply.new_daddr = p->tuple.saddr;
	sc->reply.new_dport = p->tuple.sport;
	sc->reply.ifindex = ifindex;
	sc->reply.net_id = net_id;
}

/*
 * Creates both directions of a new flow from sc (bp_new_flow): the reply entry first, claiming its tuple (bp_ct_claim), then
 * the original. A masqueraded flow (orig has BP_CT_MASQUERADE, its source
 * address already the uplink's) always takes a port of `ports`, skipping
 * those published on that address (their replies would be taken for new
 * flows to them). Any other flow keeps its ports unless its reply tuple is
 * another flow's (two host ports or a hairpin leading to the same container
 * port from the same client port): then it gets a source port of its own from
 * `ports`, as netfilter's NAT does for a clash. The first try is at a hash of
 * the tuple, the rest at random, each free with the same odds whatever the
 * table holds. A masqueraded TCP flow starts only with a SYN: any other
 * segment here belongs to no tracked flow (it ended and its port went to a
 * new flow, or it expired), and a new port would only draw a reset from the
 * far end. Returns 0, or the drop reason: BP_DROP_NAT_PORTS_EXHAUSTED
 * (masquerade) or BP_DROP_TUPLE_CLASH when no port could be had,
 * BP_DROP_STALE_FLOW for that segment, BP_DROP_CONNTRACK_FULL when the
 * table refused.
 * A global function: verified once, not at each of its callers.
 */
__noinline int bp_ct_create(struct __sk_buff *skb, struct bp_packet *p, __u64 ports)
{
	__u32 zero = 0;
	struct bp_scratch *sc = bpf_map_lookup_elem(&bp_scratch, &zero);
	if (!skb || !p || !sc)
		return BP_DROP_CONNTRACK_FULL;
	__u32 first = ports >> 32, count = (__u32)ports;
	int masq = (sc->orig.flags & BP_CT_MASQUERADE) != 0;
	if (masq && p->tuple.proto == IPPROTO_TCP && !sc->syn.is_syn)
		return BP_DROP_STALE_FLOW;
	__u64 now = bpf_ktime_get_ns();
	sc->orig.last_seen = now;
	sc->reply.last_seen = now;
	sc->orig.tcp_flags = p->tcp_flags;
	sc->reply.tcp_flags = 0;
	int claimed = 0;
	if (!masq) {
		bp_ct_reverse(&p->tuple, &sc->orig, &sc->rkey);
		claimed = bp_ct_claim(&sc->rkey, &sc->reply, &sc->syn) == 0;
	}
	if (!claimed) {
		/* Only what carries ports (or an echo id) can be given another. */
		int portful = p->tuple.proto == IPPROTO_TCP || p->tuple.proto == IPPROTO_UDP || (p->tuple.proto == IPPROTO_ICMP && p->icmp_type == ICMP_ECHO);
		if (!portful || !count)
			return masq ? BP_DROP_NAT_PORTS_EXHAUSTED : BP_DROP_TUPLE_CLASH;
		if (!(sc->orig.flags & BP_CT_SNAT)) {
			sc->orig.flags |= BP_CT_SNAT;
			sc->orig.new_saddr = p->tuple.saddr;
		}
		if (!(sc->reply.flags & BP_CT_DNAT)) {
			sc->reply.flags |= BP_CT_DNAT;
			sc->reply.new_daddr = p->tuple.saddr;
			sc->reply.new_dport = p->tuple.sport;
		}
		__u32 pick = bp_port_hash(&p->tuple);
		/* A socket coming back from the same port tries its old NAT port first. */
		struct bp_ct_value *prev = masq ? bpf_map_lookup_elem(&bp_ct, &p->tuple) : 0;
		if (prev && (prev->flags & BP_CT_MASQUERADE) && prev->new_saddr == sc->orig.new_saddr) {
			__u32 old = bpf_ntohs(prev->new_sport);
			if (old >= first && old - first < count)
				pick = old - first;
		}
		for (int i = 0; i < BP_REMAP_TRIES; i++) {
			if (i)
				pick = bpf_get_prandom_u32();
			__be16 port = bpf_htons((__u16)(first + pick % count));
			sc->orig.new_sport = port;
			bp_ct_reverse(&p->tuple, &sc->orig, &sc->rkey);
			if (bp_ct_claim(&sc->rkey, &sc->reply, &sc->syn))
				continue;
			/* Looked up once a port is had, not at every try: most tries
			 * end at a tuple in use, and a published port in the range is
			 * rare. One is given back at once. */
			if (masq && p->tuple.proto != IPPROTO_ICMP &&
			    (bp_published_lookup(p->tuple.proto, sc->orig.new_saddr, port) || bp_published_lookup(p->tuple.proto, 0, port))) {
				bpf_map_delete_elem(&bp_ct, &sc->rkey);
				continue;
			}
			claimed = 1;
			break;
		}
		if (!claimed)
			return masq ? BP_DROP_NAT_PORTS_EXHAUSTED : BP_DROP_TUPLE_CLASH;
	}
	/* The tuple's stale entry of an earlier flow, when there is one (its
	 * reply tuple went to another flow), is written over in place: no LRU
	 * insert. Looked up again rather than kept from before the search (prev):
	 * an LRU node the GC deletes meanwhile may be another key's by now. */
	struct bp_ct_value *slot = bpf_map_lookup_elem(&bp_ct, &p->tuple);
	if (slot) {
		__builtin_memcpy(slot, &sc->orig, sizeof(sc->orig));
		return 0;
	}
	if (bpf_map_update_elem(&bp_ct, &p->tuple, &sc->orig, BPF_ANY)) {
		bpf_map_delete_elem(&bp_ct, &sc->rkey);
		return BP_DROP_CONNTRACK_FULL;
	}
	return 0;
}

#endif
