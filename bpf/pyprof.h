/* pyprof.h: the only definition of the data that crosses the kernel/user boundary.
 *
 * Rules (so that the ctypes mirror pyprof_ebpf/_abi_gen.py, generated from this file by
 * tools/gen_abi.py, has exactly the same layout): fixed-width __u8..__u64 and char arrays
 * only, explicit _pad fields, no bitfields, no pointers (addresses are __u64), fields ordered
 * so natural alignment adds no hidden padding. Every struct has a size assertion.
 * Kernel struct layouts never appear here: those offsets come from BTF as -D constants.
 */
#ifndef PYPROF_H
#define PYPROF_H

#define PYPROF_COMM_LEN 16
#define PYPROF_FILENAME_LEN 256
#define PYPROF_ARGV_LEN 1024

/* Process events carried by the tracker's ring buffer. */
enum pyprof_event_kind {
	PYPROF_EV_FORK = 1,
	PYPROF_EV_EXEC = 2,
	PYPROF_EV_EXIT = 3,
};

/* proc_event.flags */
enum pyprof_event_flag {
	PYPROF_EVF_VIA_WALK = 1,           /* found by the bootstrap ancestry walk */
	PYPROF_EVF_ARGV_TRUNCATED = 2,     /* argv longer than PYPROF_ARGV_LEN */
	PYPROF_EVF_FILENAME_TRUNCATED = 4,
	PYPROF_EVF_ARGV_UNREADABLE = 8,    /* argv page not resident: bpf_probe_read_user failed */
	PYPROF_EVF_NO_GROUP_DEAD = 16,     /* pre-6.16 kernel: group death from signal->live */
};

/* Slots of the tracker's counters array. */
enum pyprof_counter {
	PYPROF_CNT_SEQ = 0,         /* next event sequence number (taken before the reserve) */
	PYPROF_CNT_RB_DROPS = 1,    /* failed bpf_ringbuf_reserve */
	PYPROF_CNT_MAP_FULL = 2,    /* failed insert into the tracked map */
	PYPROF_CNT_WALK_FORKS = 3,  /* forks rescued by the bootstrap ancestry walk */
	PYPROF_CNT_WALK_EXITS = 4,  /* exits reported by the bootstrap ancestry walk */
	PYPROF_NCOUNTERS = 8,
};

/* Tracker scope (tracker_config.scope). */
enum pyprof_scope {
	PYPROF_SCOPE_TREE = 0,     /* descendants of tracked processes */
	PYPROF_SCOPE_ALL = 1,      /* every process on the host */
	PYPROF_SCOPE_CGROUP = 2,   /* processes of one cgroup (and its descendants) */
};

/* Value of the tracked map, keyed by tgid. */
struct member {
	__u64 start;        /* task_struct.start_boottime, ns: identity together with the tgid */
	__u32 ptgid;        /* the creating process */
	__u32 flags;
};

/* Runtime switches, in a one-slot array: user space can flip them without recompiling. */
struct tracker_config {
	__u32 scope;
	__u32 bootstrap;    /* 1 while attaching to running processes: walk real_parent chains */
	__u64 cgroup_v1_id; /* SCOPE_CGROUP on a v1 hierarchy: kernfs id of the cgroup dir */
};

/* Every ring-buffer record starts with this header; FORK and EXIT are just the header. */
struct proc_event {
	__u64 seq;          /* global sequence: a gap means a lost event */
	__u64 ts;           /* bpf_ktime_get_boot_ns() */
	__u64 start;        /* identity of the process: start_boottime ns */
	__u64 pstart;       /* FORK: identity of the parent */
	__u64 cgroup_id;    /* cgroup v2 id (kernfs inode) */
	__u64 cgroup_v1_id; /* v1 id of the configured controller, 0 if none */
	__u32 kind;         /* enum pyprof_event_kind */
	__u32 tgid;
	__u32 tid;          /* FORK: creating thread; EXIT: the last thread */
	__u32 ptgid;        /* FORK: creator's tgid; EXEC/EXIT: real_parent's tgid now */
	__u32 old_pid;      /* EXEC: tid before exec (differs when a non-leader thread exec'd) */
	__u32 status;       /* EXIT: wait status as wait4() reports it */
	__u32 uid;
	__u32 flags;        /* enum pyprof_event_flag */
	char comm[PYPROF_COMM_LEN];
};

struct exec_event {
	struct proc_event hdr;
	__u32 filename_len;
	__u32 argv_len;
	char filename[PYPROF_FILENAME_LEN];
	char argv[PYPROF_ARGV_LEN];      /* NUL-separated, as in /proc/<pid>/cmdline */
};

/* doctor / BTF self-test: a raw tracepoint reads the forking task at BTF offsets. */
struct probe_cfg {
	__u32 tgid;
	__u32 _pad;
};

struct probe_result {
	__u64 hits;
	__u64 helper_pid_tgid;     /* bpf_get_current_pid_tgid() */
	__u64 btf_start_boottime;  /* current->start_boottime via BTF offset */
	__u64 child_start_boottime;
	__u32 btf_tgid;            /* current->tgid via BTF offset */
	__u32 btf_pid;
	__u32 child_tgid;
	__u32 child_pid;
};

#ifndef PYPROF_NO_ASSERTS
_Static_assert(sizeof(struct member) == 16, "struct member layout");
_Static_assert(sizeof(struct tracker_config) == 16, "struct tracker_config layout");
_Static_assert(sizeof(struct proc_event) == 96, "struct proc_event layout");
_Static_assert(sizeof(struct exec_event) == 96 + 8 + 256 + 1024, "struct exec_event layout");
_Static_assert(sizeof(struct probe_cfg) == 8, "struct probe_cfg layout");
_Static_assert(sizeof(struct probe_result) == 48, "struct probe_result layout");
#endif

#endif /* PYPROF_H */
