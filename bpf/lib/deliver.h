/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Where a packet goes after the decision: into a container, or out by the routing table. */
#ifndef BP_DELIVER_H
#define BP_DELIVER_H

#include "maps.h"

#ifndef BPF_FIB_LKUP_RET_SUCCESS
#define BPF_FIB_LKUP_RET_SUCCESS 0
#define BPF_FIB_LKUP_RET_NO_NEIGH 7
#endif

/*
 * Into the container that owns `daddr`: the frame gets the endpoint's MAC and
 * the gateway's as source, then bpf_redirect_peer puts it straight on the
 * ingress of the container's eth0, skipping the bridge and the host stack.
 */
static __always_inline int bp_deliver_to_endpoint(struct __sk_buff *skb, __be32 daddr)
{
	struct bp_endpoint *ep = bpf_map_lookup_elem(&bp_endpoints, &daddr);
	if (!ep)
		return TC_ACT_OK;
	__u32 net_id = ep->network_id;
	struct bp_network *net = bpf_map_lookup_elem(&bp_networks, &net_id);
	if (!net)
		return TC_ACT_OK;
	if (bp_set_macs(skb, ep->mac, net->bridge_mac))
		return TC_ACT_SHOT;
	bp_count_endpoint(ep->ifindex, BP_DIR_IN, skb->len);
	return bpf_redirect_peer(ep->ifindex, 0);
}

/*
 * Out by the host's routing table from the bridge of `net_id`: a FIB lookup
 * gives the egress device and next hop; without a resolved neighbour the kernel
 * resolves it (bpf_redirect_neigh). Local or unroutable destinations go to the stack.
 */
static __always_inline int bp_deliver_routed(struct __sk_buff *skb, struct bp_packet *p, __u32 in_ifindex)
{
	struct bpf_fib_lookup fib = {};
	fib.family = AF_INET;
	fib.l4_protocol = p->tuple.proto;
	fib.ipv4_src = p->tuple.saddr;
	fib.ipv4_dst = p->tuple.daddr;
	fib.sport = p->tuple.sport;
	fib.dport = p->tuple.dport;
	fib.ifindex = in_ifindex;
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (bp_set_macs(skb, fib.dmac, fib.smac))
			return TC_ACT_SHOT;
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, 0, 0, 0);
	return TC_ACT_OK;
}

/* Is addr in one of the network's routed CIDRs (exchanged with routed, not masqueraded, both ways)? */
static __always_inline int bp_net_routed(const struct bp_network *net, __be32 addr)
{
#pragma unroll
	for (int i = 0; i < BP_ROUTED_MAX; i++) {
		if (i < (int)net->n_routed && (addr & net->routed_mask[i]) == net->routed_addr[i])
			return 1;
	}
	return 0;
}

/* An address of the instance's own namespace (what iptables calls addrtype LOCAL). */
static __always_inline int bp_is_local(__be32 addr)
{
	return bpf_map_lookup_elem(&bp_local_addrs, &addr) != 0;
}

#endif
