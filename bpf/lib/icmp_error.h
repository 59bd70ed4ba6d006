/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP errors (destination unreachable, incl. fragmentation needed, and time
 * exceeded) about a tracked flow. The error quotes the packet that caused it
 * as it was on the wire, after bridgeport's rewrite; it travels back like a
 * reply, so it is found through the reply direction's entry and translated the
 * way that reply would be: the outer destination, the quoted packet's
 * addresses and ports, and the outer source when the far end of the flow sent
 * it. That is what makes port-unreachable and PMTU discovery work through NAT.
 *
 * Checksums: rewriting an address of the quoted IP header together with that
 * header's checksum leaves the header's one's-complement sum unchanged, so the
 * ICMP checksum only needs the port changes. The quoted L4 checksum is left as
 * it is: it covers bytes the error does not carry and no receiver checks it.
 */
#ifndef BP_ICMP_ERROR_H
#define BP_ICMP_ERROR_H

#include "maps.h"

#define ICMP_HDR_LEN 8

struct bp_quoted_ip {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
};

static __always_inline int bp_is_icmp_error(struct bp_packet *p)
{
	return p->tuple.proto == IPPROTO_ICMP && (p->icmp_type == ICMP_DEST_UNREACH || p->icmp_type == ICMP_TIME_EXCEEDED);
}

static __always_inline int bp_quoted_addr(struct __sk_buff *skb, __u32 off, __u32 csum_off, __be32 old, __be32 new)
{
	if (old == new)
		return 0;
	if (bpf_l3_csum_replace(skb, csum_off, old, new, sizeof(new)))
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0);
}

static __always_inline int bp_quoted_port(struct __sk_buff *skb, struct bp_packet *p, __u32 off, __be16 old, __be16 new)
{
	if (old == new)
		return 0;
	if (bpf_l4_csum_replace(skb, p->csum_off, old, new, sizeof(new)))
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0);
}

/*
 * Translates an ICMP error about a tracked flow in place. Returns 1 when it did
 * (*out is the entry used; p->tuple gets the new outer addresses), 0 when the
 * error is about no flow of ours, -1 when the packet could not be rewritten.
 */
static __always_inline int bp_icmp_error_translate(struct __sk_buff *skb, struct bp_packet *p, struct bp_ct_value *out)
{
	__u32 qip = p->l4_off + ICMP_HDR_LEN;
	struct bp_quoted_ip ip;
	if (bpf_skb_load_bytes(skb, qip, &ip, sizeof(ip)))
		return 0;
	/* Quoted options would move the ports; such packets are not ours to send. */
	if (ip.ver_ihl != 0x45)
		return 0;
	__u32 ql4 = qip + sizeof(ip);
	__be16 ports[2];
	if (bpf_skb_load_bytes(skb, ql4, ports, sizeof(ports)))
		return 0;

	struct bp_ct_key key = {};
	key.saddr = ip.daddr;
	key.daddr = ip.saddr;
	key.proto = ip.protocol;
	__u32 sport_off = ql4, dport_off = ql4 + 2;
	int has_dport = 1;
	switch (ip.protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		key.sport = ports[1];
		key.dport = ports[0];
		break;
	case IPPROTO_ICMP: {
		/* A quoted echo request: its id is the flow's "source port". */
		__u8 type = ((__u8 *)ports)[0];
		if (type != ICMP_ECHO)
			return 0;
		__be16 id;
		if (bpf_skb_load_bytes(skb, ql4 + 4, &id, sizeof(id)))
			return 0;
		key.dport = id;
		ports[0] = id;
		sport_off = ql4 + 4;
		has_dport = 0;
		break;
	}
	default:
		return 0;
	}

	struct bp_ct_value *ct = bpf_map_lookup_elem(&bp_ct, &key);
	if (!ct || bp_ct_stale(&key, ct))
		return 0;
	struct bp_ct_value v = *ct;
	*out = v;
	__be32 outer_saddr = p->tuple.saddr;

	/* The quoted packet's source is the reply's destination, and vice versa. */
	if (v.flags & BP_CT_DNAT) {
		if (bp_quoted_addr(skb, qip + offsetof(struct bp_quoted_ip, saddr), qip + offsetof(struct bp_quoted_ip, check),
				   ip.saddr, v.new_daddr))
			return -1;
		if (bp_quoted_port(skb, p, sport_off, ports[0], v.new_dport))
			return -1;
		if (bp_rewrite_addr(skb, p, IP_DST_OFF, p->tuple.daddr, v.new_daddr))
			return -1;
		p->tuple.daddr = v.new_daddr;
	}
	if (v.flags & BP_CT_SNAT) {
		if (bp_quoted_addr(skb, qip + offsetof(struct bp_quoted_ip, daddr), qip + offsetof(struct bp_quoted_ip, check),
				   ip.daddr, v.new_saddr))
			return -1;
		if (has_dport && bp_quoted_port(skb, p, dport_off, ports[1], v.new_sport))
			return -1;
		/* Sent by the flow's far end itself (port unreachable): it speaks as the translated address. */
		if (outer_saddr == ip.daddr) {
			if (bp_rewrite_addr(skb, p, IP_SRC_OFF, outer_saddr, v.new_saddr))
				return -1;
			p->tuple.saddr = v.new_saddr;
		}
	}
	return 1;
}

#endif
