// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc ingress on each uplink: traffic from outside.
 *  - packets of tracked flows: the entry's rewrite (replies of masqueraded
 *    flows, further packets to published ports), delivered into the container;
 *  - new flows to a published port: DNAT + conntrack, delivered into the container
 *    (with a source port of its own when the container-side tuple is another
 *    live flow's, see bp_ct_create);
 *  - ICMP errors about a tracked flow: translated back like its replies;
 *  - anything else addressed to a container: dropped (no direct access),
 *    unless it comes from one of the network's routed CIDRs;
 *  - the rest (the host's own traffic) passes untouched.
 * bp_uplink_ingress_prefilter also applies the deny list first (lib/prefilter.h),
 * on uplinks where it does not run as XDP.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/conntrack.h"
#include "lib/deliver.h"
#include "lib/icmp_error.h"
#include "lib/prefilter.h"

static __always_inline int deliver_flow(struct __sk_buff *skb, struct bp_packet *p, struct bp_ct_value *ct)
{
	bp_ct_touch(ct, p);
	bp_count_flow(ct, skb->len, 0);
	__be32 daddr = (ct->flags & BP_CT_DNAT) ? ct->new_daddr : p->tuple.daddr;
	__u32 ifindex = ct->ifindex;
	if (bp_ct_apply(skb, p, ct)) {
		bp_count_drop(BP_DROP_INVALID_PACKET, skb->len);
		return TC_ACT_SHOT;
	}
	if (!ifindex)
		return TC_ACT_OK;
	return bp_deliver_to_endpoint(skb, daddr);
}

/* prefilter: the deny list runs here, for an uplink without the XDP prefilter (a veth). */
static __always_inline int uplink_ingress(struct __sk_buff *skb, const int prefilter)
{
	bp_pull_headers(skb);
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct bp_packet p;

	int rc = bp_parse_ipv4(data, data_end, &p);
	/* The deny list judges the same parse (and every frame, as XDP would). */
	if (prefilter && bp_prefilter_judge(&p, rc, skb->len))
		return TC_ACT_SHOT;
	if (rc > 0)
		return TC_ACT_OK;
	if (rc < 0) {
		/* Not ours to judge unless it claims a container's address; the stack drops junk. */
		if (p.l4_short && bpf_map_lookup_elem(&bp_endpoints, &p.tuple.daddr)) {
			bp_count_drop(BP_DROP_DIRECT_ACCESS, skb->len);
			return TC_ACT_SHOT;
		}
		return TC_ACT_OK;
	}
	/* A later fragment whose first is unknown has no ports: only the direct-access check applies. */
	if (!bp_frag_ports(&p))
		goto direct_access;

	struct bp_ct_value *ct = bp_ct_lookup(skb, &p);
	if (ct)
		return deliver_flow(skb, &p, ct);

	if (bp_is_icmp_error(&p)) {
		struct bp_ct_value v;
		int t = bp_icmp_error_translate(skb, &p, &v);
		if (t < 0) {
			bp_count_drop(BP_DROP_INVALID_PACKET, skb->len);
			return TC_ACT_SHOT;
		}
		/* Related traffic of a masqueraded flow counts with it (as conntrack's SNAT state does). */
		if (t > 0 && (v.flags & BP_CT_MASQUERADE))
			bp_count_flow(&v, skb->len, 0);
		if (t > 0 && v.ifindex)
			return bp_deliver_to_endpoint(skb, p.tuple.daddr);
		return TC_ACT_OK;
	}

	if (p.tuple.proto == IPPROTO_TCP || p.tuple.proto == IPPROTO_UDP || p.tuple.proto == IPPROTO_SCTP) {
		struct bp_published_value *pub = bp_published_lookup(p.tuple.proto, p.tuple.daddr, p.tuple.dport);
		/* A port bound to a loopback address is for the host's own processes
		 * only (Docker drops it in raw PREROUTING unless it comes in on lo). */
		if (pub && (bpf_ntohl(p.tuple.daddr) >> 24) == 127) {
			bp_count_drop(BP_DROP_DIRECT_ACCESS, skb->len);
			return TC_ACT_SHOT;
		}
		__be32 pub_ip = p.tuple.daddr;
		if (!pub && bp_is_local(p.tuple.daddr)) {
			pub = bp_published_lookup(p.tuple.proto, 0, p.tuple.dport);
			pub_ip = 0;
		}
		if (pub) {
			struct bp_scratch *sc = bp_new_flow(skb, &p);
			if (!sc) {
				bp_count_drop(BP_DROP_CONNTRACK_FULL, skb->len);
				return TC_ACT_SHOT;
			}
			bp_published_flow(sc, &p, pub, pub_ip, 0);
			int reason = bp_ct_create(skb, &p, BP_CLASH_PORTS);
			if (reason) {
				bp_count_drop(reason, skb->len);
				return TC_ACT_SHOT;
			}
			ct = bpf_map_lookup_elem(&bp_ct, &p.tuple);
			if (!ct) {
				bp_count_drop(BP_DROP_CONNTRACK_FULL, skb->len);
				return TC_ACT_SHOT;
			}
			return deliver_flow(skb, &p, ct);
		}
	}

direct_access:;
	/* A container's address from outside: only published ports (and, on a
	 * routed network, its published container ports) lead in, and anything
	 * from the network's routed CIDRs (a cluster's pods on other nodes). */
	struct bp_endpoint *ep = bpf_map_lookup_elem(&bp_endpoints, &p.tuple.daddr);
	if (ep) {
		__u32 net_id = ep->network_id;
		struct bp_network *net = bpf_map_lookup_elem(&bp_networks, &net_id);
		if (net && bp_net_routed(net, p.tuple.saddr))
			return bp_deliver_to_endpoint(skb, p.tuple.daddr);
		bp_count_drop(BP_DROP_DIRECT_ACCESS, skb->len);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

SEC("tc")
int bp_uplink_ingress(struct __sk_buff *skb)
{
	return uplink_ingress(skb, 0);
}

SEC("tc")
int bp_uplink_ingress_prefilter(struct __sk_buff *skb)
{
	return uplink_ingress(skb, 1);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
