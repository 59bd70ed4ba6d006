// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Someone else's tc filter: passes everything. Tests attach it beside bridgeport's to check it is left alone. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int foreign_pass(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
