//! The cgroup v2 device controller: a `BPF_PROG_TYPE_CGROUP_DEVICE` program built from a
//! [`DevicePolicy`], hand-assembled and loaded with the raw bpf(2) syscall, no libbpf (runc's
//! devicefilter.go and ebpf_linux.go, crun's ebpf.c).
//!
//! The kernel runs the program for every open, mknod and so on of a device node by a task of
//! the cgroup, with a `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
//! where `access_type = access << 16 | type`; a return of 0 is EPERM.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;

use crate::cgroups::devices::{DeviceException, DeviceKind, DevicePolicy, ACC_ALL};

// struct bpf_insn opcodes (include/uapi/linux/bpf_common.h, bpf.h)
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_JMP32: u8 = 0x06;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

// BPF_DEVCG_DEV_*
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

// bpf(2) commands, program and attach types, flags (include/uapi/linux/bpf.h)
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
const BPF_F_REPLACE: u32 = 1 << 2;

/// The license string, as the kernel's MODULE_LICENSE reads it (runc uses the same).
const LICENSE: &[u8] = b"Apache\0";
/// Shown by `bpftool prog`; names what attached the program.
const PROG_NAME: &[u8] = b"myrt_devices";
const LOG_SIZE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("open the cgroup directory: {0}")]
    Open(std::io::Error),
    #[error("load eBPF device program: {errno} (verifier log: {log})")]
    Load { errno: Errno, log: String },
    #[error("query the attached eBPF device programs: {0}{hint}", hint = cgroup_hint(*.0))]
    Query(Errno),
    #[error("the attached eBPF device programs kept changing while listing them; retry")]
    QueryUnstable,
    #[error("attach eBPF device program: {errno}{hint}")]
    Attach { errno: Errno, hint: &'static str },
    #[error("open the old eBPF device program {id}: {errno}")]
    OpenOld { id: u32, errno: Errno },
    #[error("detach the old eBPF device program {id}: {errno}")]
    Detach { id: u32, errno: Errno },
}

impl BpfError {
    /// The kernel's errno, where the kernel refused.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            BpfError::Open(e) => e.raw_os_error().map(Errno::from_raw),
            BpfError::QueryUnstable => None,
            BpfError::Load { errno, .. }
            | BpfError::Attach { errno, .. }
            | BpfError::OpenOld { errno, .. }
            | BpfError::Detach { errno, .. }
            | BpfError::Query(errno) => Some(*errno),
        }
    }
}

/// One `struct bpf_insn`: opcode, dst_reg:4 and src_reg:4 in one byte, offset, immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        // C bitfields fill from the low bits on little endian, from the high bits on big endian
        #[cfg(target_endian = "little")]
        let regs = (src << 4) | (dst & 0x0f);
        #[cfg(target_endian = "big")]
        let regs = (dst << 4) | (src & 0x0f);
        Insn {
            code,
            regs,
            off,
            imm,
        }
    }

    #[cfg(test)]
    fn dst(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs & 0x0f
        } else {
            self.regs >> 4
        }
    }

    #[cfg(test)]
    fn src(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs >> 4
        } else {
            self.regs & 0x0f
        }
    }
}

/// dst = *(u32 *)(src + off)
const fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
}

/// 32-bit ALU op with an immediate; the result is zero-extended to 64 bits.
const fn alu32_imm(op: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(BPF_ALU | op | BPF_K, dst, 0, 0, imm)
}

const fn mov32_reg(dst: u8, src: u8) -> Insn {
    Insn::new(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
}

/// A jump whose offset [`block`] fills in once the block's length is known.
const fn jmp_imm(class: u8, op: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(class | op | BPF_K, dst, 0, 0, imm)
}

const fn jmp_reg(op: u8, dst: u8, src: u8) -> Insn {
    Insn::new(BPF_JMP | op | BPF_X, dst, src, 0, 0)
}

const fn exit() -> Insn {
    Insn::new(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
}

/// `if (reg != value) goto next` for a u32 context field: a 64-bit compare sign-extends its
/// immediate, so numbers above i32::MAX need the 32-bit compare (Linux >= 5.1).
fn jne_u32(reg: u8, value: u32) -> Insn {
    match i32::try_from(value) {
        Ok(v) => jmp_imm(BPF_JMP, BPF_JNE, reg, v),
        Err(_) => jmp_imm(BPF_JMP32, BPF_JNE, reg, value as i32),
    }
}

/// The program for `policy`: R2 = type, R3 = access, R4 = major, R5 = minor; then one block
/// per exception that returns the opposite of the default when the request matches it; then
/// the default. Exceptions share one verdict, so their order does not matter.
pub fn device_program(policy: &DevicePolicy) -> Vec<Insn> {
    let mut prog = vec![
        ldx_w(R2, R1, 0),
        alu32_imm(BPF_AND, R2, 0xffff),
        ldx_w(R3, R1, 0),
        alu32_imm(BPF_RSH, R3, 16),
        ldx_w(R4, R1, 4),
        ldx_w(R5, R1, 8),
    ];
    for ex in &policy.exceptions {
        prog.extend(block(ex, !policy.default_allow));
    }
    prog.extend([
        alu32_imm(BPF_MOV, R0, i32::from(policy.default_allow)),
        exit(),
    ]);
    prog
}

/// Returns `allow` when the request matches `ex`, else falls through to the next block.
fn block(ex: &DeviceException, allow: bool) -> Vec<Insn> {
    let kind = match ex.kind {
        DeviceKind::Block => DEV_BLOCK,
        DeviceKind::Char => DEV_CHAR,
    };
    let mut b = vec![jmp_imm(BPF_JMP, BPF_JNE, R2, kind)];
    let mut jumps = vec![0];
    if ex.access != ACC_ALL {
        b.push(mov32_reg(R1, R3));
        b.push(alu32_imm(BPF_AND, R1, i32::from(ex.access)));
        jumps.push(b.len());
        b.push(if allow {
            // an allow must grant every requested bit (v1's match_exception)
            jmp_reg(BPF_JNE, R1, R3)
        } else {
            // a deny takes effect on any requested bit (v1's match_exception_partial)
            jmp_imm(BPF_JMP, BPF_JEQ, R1, 0)
        });
    }
    for (reg, number) in [(R4, ex.major), (R5, ex.minor)] {
        if let Some(n) = number {
            jumps.push(b.len());
            b.push(jne_u32(reg, n));
        }
    }
    b.extend([alu32_imm(BPF_MOV, R0, i32::from(allow)), exit()]);
    // every test jumps to the first instruction after the block (at most 9 instructions)
    for j in jumps {
        b[j].off = (b.len() - j - 1) as i16;
    }
    b
}

/// bpf(2) with `attr`, a `union bpf_attr` prefix of the command.
fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> Result<libc::c_long, Errno> {
    let size = std::mem::size_of::<T>() as libc::c_long;
    // SAFETY: `attr` is a live, initialised #[repr(C)] prefix of union bpf_attr (no padding
    // holes) of `size` bytes; the kernel reads at most `size` bytes, and every pointer inside
    // it points to a buffer the caller keeps alive and sized as the attr says.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size) };
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

fn owned_fd(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the bpf(2) command returned a new file descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// The BPF_PROG_LOAD part of union bpf_attr, up to expected_attach_type (Linux >= 4.17);
/// older kernels accept the longer attr because the fields they do not know are zero.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

fn load_once(insns: &[Insn], log: Option<&mut [u8]>) -> Result<OwnedFd, Errno> {
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    if let Some(buf) = log {
        attr.log_level = 1;
        attr.log_size = buf.len() as u32;
        attr.log_buf = buf.as_mut_ptr() as u64;
    }
    sys_bpf(BPF_PROG_LOAD, &mut attr).map(owned_fd)
}

/// Loads the program; on failure loads it again with a log buffer so that the error can say
/// why the verifier refused it.
pub fn load(insns: &[Insn]) -> Result<OwnedFd, BpfError> {
    let first = match load_once(insns, None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    // Linux < 5.11 charges programs to RLIMIT_MEMLOCK and fails with EPERM (runc #2167)
    if first == Errno::EPERM && raise_memlock() {
        if let Ok(fd) = load_once(insns, None) {
            return Ok(fd);
        }
    }
    let mut buf = vec![0u8; LOG_SIZE];
    let errno = match load_once(insns, Some(&mut buf)) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let text = String::from_utf8_lossy(&buf[..end]);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let log = match lines.len() {
        0 => "empty".to_string(),
        // the end of the log holds the verdict
        n => lines[n.saturating_sub(20)..].join("; "),
    };
    Err(BpfError::Load { errno, log })
}

/// Lifts RLIMIT_MEMLOCK to infinity; true when it was finite and is now raised.
fn raise_memlock() -> bool {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    match getrlimit(Resource::RLIMIT_MEMLOCK) {
        Ok((soft, _)) if soft != RLIM_INFINITY => {
            setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY).is_ok()
        }
        _ => false,
    }
}

#[repr(C)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

/// Ids of the device programs attached to the cgroup itself (not those it inherits).
fn query(cgroup: BorrowedFd<'_>) -> Result<Vec<u32>, BpfError> {
    let mut ids = vec![0u32; 64];
    for _ in 0..10 {
        let mut attr = QueryAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            query_flags: 0,
            attach_flags: 0,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            pad: 0,
        };
        match sys_bpf(BPF_PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(ids);
            }
            // the kernel wrote back how many there are
            Err(Errno::ENOSPC) => ids.resize(attr.prog_cnt as usize, 0),
            Err(e) => return Err(BpfError::Query(e)),
        }
    }
    Err(BpfError::QueryUnstable)
}

#[repr(C)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn prog_fd_by_id(id: u32) -> Result<OwnedFd, Errno> {
    let mut attr = GetFdAttr {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
    };
    sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(owned_fd)
}

#[repr(C)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn attach_cmd(
    cmd: libc::c_long,
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    flags: u32,
    replace: Option<BorrowedFd<'_>>,
) -> Result<(), Errno> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: replace.map_or(0, |fd| fd.as_raw_fd() as u32),
    };
    sys_bpf(cmd, &mut attr).map(drop)
}

/// The kernel answers EBADF for a directory that is not a cgroup2 one.
fn cgroup_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EBADF => " (is the directory a cgroup v2 cgroup?)",
        _ => "",
    }
}

fn attach_error(errno: Errno) -> BpfError {
    let hint = match errno {
        Errno::EPERM => {
            " (needs CAP_SYS_ADMIN; or a program without BPF_F_ALLOW_MULTI holds the cgroup)"
        }
        e => cgroup_hint(e),
    };
    BpfError::Attach { errno, hint }
}

/// Opens a cgroup directory for the bpf(2) commands that take one.
pub fn open_cgroup(dir: &Path) -> Result<OwnedFd, BpfError> {
    std::fs::File::open(dir)
        .map(OwnedFd::from)
        .map_err(BpfError::Open)
}

/// Ids of the device programs attached to the cgroup at `dir` itself.
#[cfg(test)]
pub fn attached(dir: &Path) -> Result<Vec<u32>, BpfError> {
    query(open_cgroup(dir)?.as_fd())
}

/// Attaches `insns` next to the programs already there, as a second runtime might.
#[cfg(test)]
pub fn attach_beside(dir: &Path, insns: &[Insn]) -> Result<(), BpfError> {
    let cgroup = open_cgroup(dir)?;
    let prog = load(insns)?;
    attach_cmd(
        BPF_PROG_ATTACH,
        cgroup.as_fd(),
        prog.as_fd(),
        BPF_F_ALLOW_MULTI,
        None,
    )
    .map_err(attach_error)
}

/// Makes `insns` the one device program of the cgroup at `dir`. Every device program attached
/// to the cgroup itself before is replaced: the only one atomically with BPF_F_REPLACE
/// (Linux >= 5.6), several (or an older kernel) by attaching first and detaching after, so
/// that the cgroup is never left without a filter (runc does the same).
pub fn install(dir: &Path, insns: &[Insn]) -> Result<(), BpfError> {
    let cgroup = open_cgroup(dir)?;
    let cgroup = cgroup.as_fd();
    let mut old = query(cgroup)?;
    let prog = load(insns)?;
    let prog = prog.as_fd();
    if let [id] = old[..] {
        match prog_fd_by_id(id) {
            Ok(old_fd) => {
                let flags = BPF_F_ALLOW_MULTI | BPF_F_REPLACE;
                match attach_cmd(BPF_PROG_ATTACH, cgroup, prog, flags, Some(old_fd.as_fd())) {
                    Ok(()) => return Ok(()),
                    // no BPF_F_REPLACE before Linux 5.6: attach, then detach below
                    Err(Errno::EINVAL) => {}
                    Err(e) => return Err(attach_error(e)),
                }
            }
            Err(Errno::ENOENT) => old.clear(), // gone meanwhile
            Err(errno) => return Err(BpfError::OpenOld { id, errno }),
        }
    }
    attach_cmd(BPF_PROG_ATTACH, cgroup, prog, BPF_F_ALLOW_MULTI, None).map_err(attach_error)?;
    for id in old {
        let old_fd = match prog_fd_by_id(id) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(errno) => return Err(BpfError::OpenOld { id, errno }),
        };
        match attach_cmd(BPF_PROG_DETACH, cgroup, old_fd.as_fd(), 0, None) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(errno) => return Err(BpfError::Detach { id, errno }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::devices::{rules_with_defaults, ACC_MKNOD, ACC_READ, ACC_WRITE};
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    fn program(rules: &[LinuxDeviceCgroup]) -> (DevicePolicy, Vec<Insn>) {
        let policy = DevicePolicy::from_rules(rules).unwrap();
        let insns = device_program(&policy);
        check_structure(&insns);
        (policy, insns)
    }

    const CTX: usize = 11; // a register value no program can make: "points to the context"

    /// A tiny interpreter for the instructions [`device_program`] emits, with the verifier's
    /// basic rules: no uninitialised register is read, only R1 (the context) is dereferenced,
    /// every jump stays inside the program, and R0 is set at exit.
    fn run(prog: &[Insn], kind: DeviceKind, major: u32, minor: u32, access: u8) -> bool {
        let kind = match kind {
            DeviceKind::Block => 1u32,
            DeviceKind::Char => 2,
        };
        let ctx = [(u32::from(access) << 16) | kind, major, minor];
        let mut reg = [None::<u64>; 11];
        let mut is_ctx = [false; 11];
        is_ctx[R1 as usize] = true;
        reg[R1 as usize] = Some(CTX as u64);
        let mut pc = 0usize;
        for _ in 0..=prog.len() {
            assert!(pc < prog.len(), "pc {pc} fell off the program");
            let i = prog[pc];
            let (d, s) = (usize::from(i.dst()), usize::from(i.src()));
            let get =
                |r: usize| reg[r].unwrap_or_else(|| panic!("pc {pc}: r{r} read uninitialised"));
            let imm64 = i64::from(i.imm) as u64; // 64-bit ops sign-extend the immediate
                                                 // (value written to dst, jump taken)
            let (value, taken) = match i.code {
                0x61 => {
                    let ok = is_ctx[s] && (0..=8).contains(&i.off) && i.off % 4 == 0;
                    assert!(ok, "pc {pc}: load from r{s}{:+}", i.off);
                    (Some(u64::from(ctx[i.off as usize / 4])), false)
                }
                0x54 => (Some(u64::from(get(d) as u32 & i.imm as u32)), false),
                0x74 => (Some(u64::from((get(d) as u32) >> i.imm)), false),
                0xb4 => (Some(u64::from(i.imm as u32)), false),
                0xbc => (Some(u64::from(get(s) as u32)), false),
                0x55 => (None, get(d) != imm64),
                0x15 => (None, get(d) == imm64),
                0x5d => (None, get(d) != get(s)),
                0x56 => (None, get(d) as u32 != i.imm as u32),
                0x95 => {
                    assert!(!is_ctx[0], "R0 holds a pointer at exit");
                    return match get(0) {
                        0 => false,
                        1 => true,
                        v => panic!("the program returned {v}"),
                    };
                }
                c => panic!("pc {pc}: opcode {c:#x} is outside the subset"),
            };
            if let Some(v) = value {
                reg[d] = Some(v);
                is_ctx[d] = false;
            }
            pc += 1;
            if taken {
                pc += i.off as usize;
            }
        }
        panic!("the program did not exit within {} steps", prog.len() + 1);
    }

    /// Ends with exit; every jump lands forward inside the program; every instruction can be
    /// reached (the verifier refuses unreachable code).
    fn check_structure(prog: &[Insn]) {
        assert!(prog.len() >= 8, "{prog:?}");
        assert_eq!(prog.last(), Some(&exit()));
        let mut reached = vec![false; prog.len()];
        reached[0] = true;
        for (pc, i) in prog.iter().enumerate() {
            if !reached[pc] {
                panic!("instruction {pc} is unreachable: {prog:?}");
            }
            let class = i.code & 0x07;
            let jumps = (class == BPF_JMP || class == BPF_JMP32) && i.code != BPF_JMP | BPF_EXIT;
            if jumps {
                let target = pc + 1 + i.off as usize;
                assert!(
                    i.off >= 0 && target < prog.len(),
                    "jump at {pc} to {target}"
                );
                reached[target] = true;
            } else if i.off != 0 && class != BPF_LDX {
                panic!("instruction {pc} has an offset: {i:?}");
            }
            if i.code != BPF_JMP | BPF_EXIT && pc + 1 < prog.len() {
                reached[pc + 1] = true;
            }
        }
    }

    /// The OCI rules read naively: the last rule naming the device and the access wins; none
    /// means deny. This agrees with v1 (and [`DevicePolicy`]) for one access bit at a time, as
    /// long as no rule takes access away from a narrower exception an earlier rule made.
    fn last_match(
        rules: &[LinuxDeviceCgroup],
        kind: DeviceKind,
        major: u32,
        minor: u32,
        bit: u8,
    ) -> bool {
        let num = |n: Option<i64>, v: u32| matches!(n, None | Some(-1)) || n == Some(i64::from(v));
        let names = |r: &&LinuxDeviceCgroup| {
            let access = r
                .access()
                .as_deref()
                .filter(|a| !a.is_empty())
                .unwrap_or("rwm");
            let letter = match bit {
                ACC_READ => 'r',
                ACC_WRITE => 'w',
                _ => 'm',
            };
            match r.typ().unwrap_or(LinuxDeviceType::A) {
                LinuxDeviceType::A => true,
                t => {
                    let t_kind = if t == LinuxDeviceType::B {
                        DeviceKind::Block
                    } else {
                        DeviceKind::Char
                    };
                    t_kind == kind
                        && num(r.major(), major)
                        && num(r.minor(), minor)
                        && access.contains(letter)
                }
            }
        };
        rules.iter().rev().find(names).is_some_and(|r| r.allow())
    }

    const MAJORS: [u32; 9] = [0, 1, 5, 8, 10, 136, 2_147_483_647, 2_147_483_648, u32::MAX];
    const MINORS: [u32; 7] = [0, 3, 5, 7, 200, 2_147_483_648, u32::MAX];

    /// Runs every sample request through the program and compares with the policy (all access
    /// combinations) and with [`last_match`] (single bits). Returns how many were allowed.
    fn agree(rules: &[LinuxDeviceCgroup]) -> usize {
        let (policy, prog) = program(rules);
        let mut allowed = 0;
        for kind in [DeviceKind::Block, DeviceKind::Char] {
            for (major, minor) in MAJORS
                .iter()
                .flat_map(|a| MINORS.iter().map(move |b| (*a, *b)))
            {
                for access in 1..=ACC_ALL {
                    let got = run(&prog, kind, major, minor, access);
                    let want = policy.allows(kind, major, minor, access);
                    let req = format!("{kind:?} {major}:{minor} access {access:#b}");
                    assert_eq!(got, want, "{req} under {policy:?}");
                    if access.count_ones() == 1 {
                        let naive = last_match(rules, kind, major, minor, access);
                        assert_eq!(got, naive, "{req}: program vs the rules read in order");
                    }
                    allowed += usize::from(got);
                }
            }
        }
        allowed
    }

    #[test]
    fn cgroups_bpf_deny_all_stream() {
        let (_, prog) = program(&rules(r#"[{"allow":false,"access":"rwm"}]"#));
        let expected = [
            ldx_w(R2, R1, 0),
            alu32_imm(BPF_AND, R2, 0xffff),
            ldx_w(R3, R1, 0),
            alu32_imm(BPF_RSH, R3, 16),
            ldx_w(R4, R1, 4),
            ldx_w(R5, R1, 8),
            alu32_imm(BPF_MOV, R0, 0),
            exit(),
        ];
        assert_eq!(prog, expected);
        // the kernel's encoding of the first and the last instruction
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!((prog[0].code, prog[0].dst(), prog[0].src()), (0x61, 2, 1));
        assert_eq!((prog[7].code, prog[7].off, prog[7].imm), (0x95, 0, 0));
        assert_eq!(agree(&rules(r#"[{"allow":false,"access":"rwm"}]"#)), 0);
    }

    #[test]
    fn cgroups_bpf_allow_one_device() {
        let list = rules(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]"#,
        );
        let (_, prog) = program(&list);
        // loads, then: type, major, minor tests (rwm needs no access test), mov, exit; default
        assert_eq!(prog.len(), 6 + 5 + 2);
        assert_eq!(
            prog[6],
            Insn {
                off: 4,
                ..jmp_imm(BPF_JMP, BPF_JNE, R2, 2)
            }
        );
        assert_eq!(
            prog[7],
            Insn {
                off: 3,
                ..jmp_imm(BPF_JMP, BPF_JNE, R4, 1)
            }
        );
        assert_eq!(
            prog[8],
            Insn {
                off: 2,
                ..jmp_imm(BPF_JMP, BPF_JNE, R5, 3)
            }
        );
        assert_eq!((prog[9].imm, prog[12].imm), (1, 0));
        assert!(run(&prog, DeviceKind::Char, 1, 3, ACC_READ | ACC_WRITE));
        assert!(!run(&prog, DeviceKind::Char, 1, 7, ACC_READ));
        assert!(!run(&prog, DeviceKind::Block, 1, 3, ACC_READ));
        assert_eq!(agree(&list), 7); // one device, seven access combinations
    }

    #[test]
    fn cgroups_bpf_wildcards_and_access_subsets() {
        let list = rules(
            r#"[{"allow":false},{"allow":true,"type":"c","minor":5,"access":"r"},
            {"allow":true,"type":"b","major":8,"access":"rw"},{"allow":true,"type":"c","major":136,"minor":-1},
            {"allow":true,"type":"c","major":-1,"minor":-1,"access":"m"},
            {"allow":true,"type":"u","major":4294967295,"minor":2147483648,"access":"w"}]"#,
        );
        let (_, prog) = program(&list);
        assert!(run(&prog, DeviceKind::Char, 7, 5, ACC_READ));
        assert!(!run(&prog, DeviceKind::Char, 7, 5, ACC_READ | ACC_WRITE));
        assert!(run(&prog, DeviceKind::Block, 8, 16, ACC_WRITE));
        assert!(!run(&prog, DeviceKind::Block, 8, 16, ACC_MKNOD));
        assert!(run(&prog, DeviceKind::Char, 136, 9, ACC_ALL));
        assert!(run(&prog, DeviceKind::Char, 99, 9, ACC_MKNOD));
        assert!(run(
            &prog,
            DeviceKind::Char,
            u32::MAX,
            2_147_483_648,
            ACC_WRITE
        ));
        assert!(!run(&prog, DeviceKind::Char, u32::MAX, 0, ACC_WRITE));
        // numbers past i32::MAX use the 32-bit compare
        assert!(prog
            .iter()
            .any(|i| i.code == BPF_JMP32 | BPF_JNE | BPF_K && i.imm == -1));
        agree(&list);
        // the container default: containerd's deny-all plus runc's default devices
        let defaults = rules_with_defaults(&rules(r#"[{"allow":false,"access":"rwm"}]"#), &[]);
        agree(&defaults);
    }

    #[test]
    fn cgroups_bpf_type_a_and_default_allow() {
        let list = rules(
            r#"[{"allow":false},{"allow":true,"type":"c","major":1,"minor":3},{"allow":true,"type":"a","access":"rwm"}]"#,
        );
        let (policy, prog) = program(&list);
        assert!(policy.allows_everything());
        assert_eq!(prog[6..], [alu32_imm(BPF_MOV, R0, 1), exit()]);
        assert_eq!(agree(&list), 2 * MAJORS.len() * MINORS.len() * 7);

        let deny = rules(
            r#"[{"allow":true,"type":"a"},{"allow":false,"type":"c","major":1,"minor":7,"access":"w"},
            {"allow":false,"type":"b","access":"m"},{"allow":false,"type":"c","major":10,"access":"rw"},
            {"allow":true,"type":"c","major":10,"access":"r"}]"#,
        );
        let (_, prog) = program(&deny);
        assert!(run(&prog, DeviceKind::Char, 1, 7, ACC_READ));
        assert!(!run(&prog, DeviceKind::Char, 1, 7, ACC_READ | ACC_WRITE));
        assert!(!run(&prog, DeviceKind::Block, 8, 0, ACC_MKNOD));
        assert!(run(&prog, DeviceKind::Char, 10, 200, ACC_READ | ACC_MKNOD));
        assert!(!run(&prog, DeviceKind::Char, 10, 200, ACC_WRITE));
        agree(&deny);
        // "a" in the middle resets what came before it
        agree(&rules(
            r#"[{"allow":true,"type":"c","major":1,"minor":3},{"allow":false,"type":"a"},
            {"allow":true,"type":"b","major":7,"minor":0,"access":"r"}]"#,
        ));
    }

    #[test]
    fn cgroups_bpf_narrow_allow_survives_wider_deny_like_v1() {
        // v1 removes only the exception with exactly the same numbers, so c 1:3 r stays; runc's
        // emulator agrees, and so does the program: this is where reading "last rule wins" is wrong
        let list = rules(
            r#"[{"allow":false},{"allow":true,"type":"c","major":1,"minor":3,"access":"r"},
            {"allow":true,"type":"c","major":1,"access":"r"},{"allow":false,"type":"c","major":1,"access":"r"}]"#,
        );
        let (_, prog) = program(&list);
        assert!(run(&prog, DeviceKind::Char, 1, 3, ACC_READ));
        assert!(!run(&prog, DeviceKind::Char, 1, 5, ACC_READ));
        assert!(!last_match(&list, DeviceKind::Char, 1, 3, ACC_READ));
    }

    #[test]
    fn cgroups_bpf_load_errors_are_explained() {
        // an invalid program: it reads R0 before setting it
        let bad = [exit()];
        match load(&bad) {
            Ok(_) => panic!("the kernel loaded a program that exits with R0 unset"),
            Err(e) => {
                let text = e.to_string();
                eprintln!("{text}");
                assert!(text.starts_with("load eBPF device program: "), "{text}");
                if e.errno() == Some(Errno::EACCES) || e.errno() == Some(Errno::EINVAL) {
                    // privileged enough to reach the verifier: its verdict is in the error
                    assert!(text.contains("R0 !read_ok"), "{text}");
                } else {
                    assert_eq!(e.errno(), Some(Errno::EPERM), "{text}");
                }
            }
        }
    }
}
