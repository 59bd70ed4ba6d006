// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * XDP on each uplink: the deny list (lib/prefilter.h), applied before an skb
 * exists when the driver runs XDP natively.
 *
 * Two entry points, one body:
 *  - bp_prefilter (xdp.frags) for native mode, so an uplink with an MTU above
 *    a page may run it;
 *  - bp_prefilter_generic for generic (skb) mode. Generic XDP hands a
 *    frags-aware program's skbs on in page fragments, and on Linux 6.18 the tc
 *    ingress after it then sees them without their Ethernet header (skb->len
 *    counted from the IP header): the uplink's tc program could not parse
 *    them. A program without frags support gets the linear skb as before.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/prefilter.h"

SEC("xdp.frags")
int bp_prefilter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	return bp_prefilter_drops(data, data_end, bpf_xdp_get_buff_len(ctx)) ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int bp_prefilter_generic(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	return bp_prefilter_drops(data, data_end, (__u32)(data_end - data)) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
