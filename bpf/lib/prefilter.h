/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The uplinks' prefilter: the operator's deny list (`bridgeport firewall
 * deny`), the counterpart of DOCKER-USER. Rules are source CIDRs, optionally
 * narrowed to one destination port. It runs as XDP on the uplinks
 * (xdp_prefilter.c) and, where XDP would cost more than it saves (a veth
 * uplink: native XDP there takes TSO away from the peer), first thing in the
 * uplink's tc ingress program (tc_uplink.c). Its verdicts count in
 * bp_xdp_stats wherever it runs.
 */
#ifndef BP_PREFILTER_H
#define BP_PREFILTER_H

#include "common.h"
#include "maps.h"

static __always_inline int bp_denied(__u8 proto, __be16 port, __be32 saddr)
{
	struct bp_firewall_key k = { .prefixlen = 64, .proto = 0, .port = 0, .addr = saddr };
	if (bpf_map_lookup_elem(&bp_firewall, &k))
		return 1;
	if (!port)
		return 0;
	k.proto = proto;
	k.port = port;
	return bpf_map_lookup_elem(&bp_firewall, &k) != 0;
}

/*
 * Judges a frame parsed by bp_parse_ipv4 (rc its result, len the frame's whole
 * length) and counts the verdict. Returns 1 to drop it.
 */
static __always_inline int bp_prefilter_judge(const struct bp_packet *p, int rc, __u32 len)
{
	enum bp_drop_reason reason = BP_DROP_MAX;
	/* A first fragment too short to hold the ports (RFC 1858's tiny fragment:
	 * no fragmenter makes one) would slip a port rule. */
	if (rc < 0 && p->l4_short && p->is_fragment && !p->tuple.dport)
		reason = BP_DROP_INVALID_PACKET;
	/* A cut-short L4 header still has its ports; later fragments are judged by source only. */
	else if ((rc == 0 || (rc < 0 && p->l4_short)) && bp_denied(p->tuple.proto, p->tuple.dport, p->tuple.saddr))
		reason = BP_DROP_DENY_LIST;
	__u32 key = reason != BP_DROP_MAX ? BP_XDP_DROP : BP_XDP_PASS;
	struct bp_counter *c = bpf_map_lookup_elem(&bp_xdp_stats, &key);
	if (c)
		bp_count(c, len);
	if (reason != BP_DROP_MAX) {
		bp_count_drop(reason, len);
		return 1;
	}
	return 0;
}

/* Parses and judges one frame (data..data_end holds its headers, len is its whole length). Returns 1 to drop it. */
static __always_inline int bp_prefilter_drops(void *data, void *data_end, __u32 len)
{
	struct bp_packet p;
	int rc = bp_parse_ipv4(data, data_end, &p);
	return bp_prefilter_judge(&p, rc, len);
}

#endif
