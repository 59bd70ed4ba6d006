// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Test harness for masquerade's port allocation (bp_ct_create in
 * bpf/lib/conntrack.h) under BPF_PROG_TEST_RUN, which has no route to an
 * uplink for tc_endpoint's own masquerade(): every IPv4 packet is a
 * container's flow out through the uplink of bp_uplinks key 1. A tracked flow
 * gets its rewrite, a new one is created the way masquerade() creates it.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/conntrack.h"

SEC("tc")
int bp_test_masquerade(struct __sk_buff *skb)
{
	bp_pull_headers(skb);
	struct bp_packet p;
	if (bp_parse_ipv4((void *)(long)skb->data, (void *)(long)skb->data_end, &p))
		return TC_ACT_OK;
	struct bp_ct_value *ct = bp_ct_lookup(skb, &p);
	if (!ct) {
		__u32 uplink = 1, ifindex = skb->ifindex;
		struct bp_uplink *up = bpf_map_lookup_elem(&bp_uplinks, &uplink);
		/* The sending container's network, when the test registered it. */
		struct bp_endpoint *me = bpf_map_lookup_elem(&bp_endpoint_by_if, &ifindex);
		struct bp_scratch *sc = bp_new_flow(skb, &p);
		if (!up || !sc)
			return TC_ACT_OK;
		bp_masquerade_flow(sc, &p, up->ip, skb->ifindex, me ? me->network_id : 0);
		int reason = bp_ct_create(skb, &p, BP_PORTS(SETTINGS.snat_port_first, SETTINGS.snat_port_last - SETTINGS.snat_port_first + 1));
		if (reason) {
			bp_count_drop(reason, skb->len);
			return TC_ACT_SHOT;
		}
		ct = bpf_map_lookup_elem(&bp_ct, &p.tuple);
		if (!ct)
			return TC_ACT_SHOT;
	}
	bp_ct_touch(ct, &p);
	return bp_ct_apply(skb, &p, ct) ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
