/* probe.bpf.c: the smallest program that exercises everything the tool relies on.
 *
 * Used by `pyprof-ebpf doctor` and the root tests: a raw tracepoint on sched_process_fork
 * reads the forking task and the child at BTF-derived offsets (OFF_* from -D, never from the
 * header tree), a cpu-clock perf event counts samples, and a ring buffer carries one record.
 * Only the process named in probe_cfg is looked at, so unrelated forks cost one map lookup.
 */
#include "pyprof.h"

BPF_ARRAY(probe_cfg, struct probe_cfg, 1);
BPF_ARRAY(probe_out, struct probe_result, 1);
BPF_ARRAY(perf_hits, u64, 1);
BPF_RINGBUF_OUTPUT(probe_ring, 1);
/* Unused by the code: declared so bcc compiles struct proc_event and exposes clang's view of
 * it (table.Leaf) for the ABI check against the ctypes mirror. */
BPF_ARRAY(abi_proc_event, struct proc_event, 1);
BPF_ARRAY(abi_exec_event, struct exec_event, 1);
BPF_ARRAY(abi_member, struct member, 1);

#define RD(dst, base, off) bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)((char *)(base) + (off)))

/* raw_tp/sched_process_fork: args[0] = parent (current), args[1] = child
 * (include/trace/events/sched.h, TRACE_EVENT(sched_process_fork)). */
int probe_fork(struct bpf_raw_tracepoint_args *ctx)
{
	u32 zero = 0;
	struct probe_cfg *cfg = probe_cfg.lookup(&zero);
	u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!cfg || cfg->tgid != (u32)(pid_tgid >> 32))
		return 0;

	struct probe_result r = {};
	void *cur = (void *)bpf_get_current_task();
	void *child = (void *)ctx->args[1];
	struct probe_result *prev = probe_out.lookup(&zero);
	r.hits = prev ? prev->hits + 1 : 1;
	r.helper_pid_tgid = pid_tgid;
	RD(r.btf_tgid, cur, OFF_TASK_TGID);
	RD(r.btf_pid, cur, OFF_TASK_PID);
	RD(r.btf_start_boottime, cur, OFF_TASK_START_BOOTTIME);
	RD(r.child_tgid, child, OFF_TASK_TGID);
	RD(r.child_pid, child, OFF_TASK_PID);
	RD(r.child_start_boottime, child, OFF_TASK_START_BOOTTIME);
	probe_out.update(&zero, &r);
	probe_ring.ringbuf_output(&r, sizeof(r), 0);
	return 0;
}

int probe_sample(struct bpf_perf_event_data *ctx)
{
	u32 zero = 0;
	u64 *n = perf_hits.lookup(&zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}
