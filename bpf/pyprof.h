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

/* ---- Python sampling ------------------------------------------------------------------ */

#define PYPROF_MAX_FRAMES 128
#define PYPROF_NAME_LEN 128
#define PYPROF_FILE_LEN 256
#define PYPROF_LINETABLE_LEN 512

/* sample.flags */
enum pyprof_sample_flag {
	PYPROF_SF_TRUNCATED = 1,       /* deeper than PYPROF_MAX_FRAMES */
	PYPROF_SF_NO_TSTATE = 2,       /* no PyThreadState matched this thread (not Python) */
	PYPROF_SF_READ_ERROR = 4,      /* a frame could not be read (paged out, torn) */
	PYPROF_SF_NO_CONFIG = 8,       /* process not (yet) described in py_procs */
};

/* Per-process CPython layout, keyed by tgid in py_procs. Offsets in bytes, -1 = absent.
 * Names follow CPython's Struct_field where one field is meant; the frame_* and tstate_frame
 * fields are the version-independent roles of pyprof_ebpf.cpython.offsets.Offsets. */
struct py_proc {
	__u64 runtime;                           /* &_PyRuntime in the target */
	__u64 pycode_type;                       /* &PyCode_Type: frames must point at one */
	__u64 code_ptr_mask;                     /* 3.14 _PyStackRef tag bits cleared */
	__s32 PyRuntimeState_interpreters_head;
	__s32 PyInterpreterState_threads_head;
	__s16 PyThreadState_next;
	__s16 PyThreadState_thread_id;
	__s16 tstate_frame;                      /* frame, cframe or current_frame */
	__s16 _PyCFrame_current_frame;           /* -1: tstate_frame already is the frame */
	__s16 frame_previous;
	__s16 frame_code;
	__s16 frame_instr;
	__s16 frame_owner;                       /* -1: no owner byte (before 3.11) */
	__s16 PyObject_ob_type;
	__s16 PyCodeObject_co_filename;
	__s16 PyCodeObject_co_name;              /* co_qualname where it exists */
	__s16 PyCodeObject_co_firstlineno;
	__s16 PyCodeObject_co_linetable;         /* co_lnotab before 3.10 */
	__s16 PyCodeObject_co_code_adaptive;     /* -1 before 3.11 */
	__s16 PyASCIIObject_length;
	__s16 PyASCIIObject_state;
	__s16 PyASCIIObject_size;                /* compact ASCII data starts here */
	__s16 PyCompactUnicodeObject_size;       /* compact non-ASCII data starts here */
	__s16 PyBytesObject_ob_size;
	__s16 PyBytesObject_ob_sval;
	__u16 owner_skip_min;                    /* skip frames with owner >= this (shims) */
	__u8 instr_kind;                         /* 0 f_lasti bytes, 1 f_lasti units, 2 pointer */
	__u8 unicode_kind_shift;
	__u8 unicode_compact_bit;
	__u8 unicode_ascii_bit;
	__u8 _pad[2];
};

struct py_frame {
	__u64 code;     /* code object address */
	__s32 addrq;    /* byte offset of the current instruction; < 0: before the first */
	__u32 tag;      /* co_firstlineno ^ low bits of the line table pointer: detects reuse */
};

struct sample {
	__u64 ts;                   /* bpf_ktime_get_boot_ns() */
	__u64 start;                /* process identity (start_boottime ns) */
	__u32 pid;
	__u32 tid;
	__u32 cpu;
	__u32 flags;                /* enum pyprof_sample_flag */
	__s32 user_stack_id;        /* -1 unless native stacks were asked for */
	__s32 kernel_stack_id;
	__u32 nframes;              /* frames[0] is the innermost (leaf) frame */
	__u32 _pad;
	struct py_frame frames[PYPROF_MAX_FRAMES];
};

struct code_key {
	__u32 tgid;
	__u32 tag;
	__u64 code;
};

/* Captured on first sight of a code object, so processes that exit right after a sample
 * still resolve. *_kind: 1/2/4 bytes per code point (PEP 393), 0 = unreadable. */
struct code_info {
	__s32 firstlineno;
	__u32 linetable_len;        /* full length of the table in the target */
	__u16 name_len;             /* bytes copied */
	__u16 file_len;
	__u8 name_kind;
	__u8 file_kind;
	__u8 _pad[10];
	char name[PYPROF_NAME_LEN];
	char file[PYPROF_FILE_LEN];
	__u8 linetable[PYPROF_LINETABLE_LEN];
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
_Static_assert(sizeof(struct py_proc) == 24 + 8 + 21 * 2 + 6, "struct py_proc layout");
_Static_assert(sizeof(struct py_frame) == 16, "struct py_frame layout");
_Static_assert(sizeof(struct sample) == 48 + 16 * PYPROF_MAX_FRAMES, "struct sample layout");
_Static_assert(sizeof(struct code_key) == 16, "struct code_key layout");
_Static_assert(sizeof(struct code_info) == 24 + 128 + 256 + 512, "struct code_info layout");
_Static_assert(sizeof(struct probe_cfg) == 8, "struct probe_cfg layout");
_Static_assert(sizeof(struct probe_result) == 48, "struct probe_result layout");
#endif

#endif /* PYPROF_H */
