use candle_core::{DType, Device, Tensor};
use neuronmap::engine::capture::{Batch, Capture};
use neuronmap::engine::hooks::HookSelection;
use neuronmap::engine::tokenize::PromptTokenizer;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
fn add(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            add(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            add(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, n) };
        if !q.is_null() {
            CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
            add(n);
        }
        q
    }
}
#[global_allocator]
static A: Counting = Counting;
fn start() -> usize {
    let b = CURRENT.load(Ordering::Relaxed);
    PEAK.store(b, Ordering::Relaxed);
    b
}
fn peak(b: usize) -> (usize, isize) {
    (
        PEAK.load(Ordering::Relaxed) - b,
        CURRENT.load(Ordering::Relaxed) as isize - b as isize,
    )
}

fn main() {
    let prompt =
        "the quick brown fox jumps over the lazy dog and keeps running far away ".repeat(40);
    let mode = std::env::args().nth(1).unwrap_or_default();
    for name in ["bert", "distilbert", "gpt2", "llama", "qwen2", "roberta"] {
        let dir = Path::new("tests/fixtures").join(name);
        let size = std::fs::metadata(dir.join("tokenizer.json")).unwrap().len();
        // warm
        {
            let t = PromptTokenizer::load(&dir, 16).unwrap();
            t.encode(&prompt, 0).unwrap();
        }
        let b = start();
        let tok = PromptTokenizer::load(&dir, 16).unwrap();
        let (p, r) = peak(b);
        let b2 = start();
        let ids = tok.encode(&prompt, 0).unwrap();
        let (pe, _) = peak(b2);
        let b3 = start();
        let ids2 = tok.encode(&prompt[..1440], 0).unwrap();
        let (pe2, _) = peak(b3);
        let b4 = start();
        let ids3 = tok.encode(&prompt[..360], 0).unwrap();
        let (pe3, _) = peak(b4);
        println!("{name:<10} tokjson {size:>6} load_peak {p:>7} retained {r:>7} | encode 2880B peak {pe:>7} 1440B {pe2:>7} 360B {pe3:>7} ntok {} {} {}", ids.len(), ids2.len(), ids3.len());
        drop(tok);
        let b = start();
        let loaded = neuronmap::engine::families::load(&dir, DType::F32, &Device::Cpu).unwrap();
        let (p, r) = peak(b);
        let wsize: u64 = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("model"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        println!("           model load peak {p:>7} retained {r:>7} weight files {wsize}");
        if mode == "fwd" {
            let model = loaded.model;
            let hooks = model.hooks();
            for (glob, bs) in [
                ("blocks.*.hook_resid_post", [(1usize, 16usize), (16, 64)]),
                ("blocks.*.attn.hook_pattern", [(1, 16), (16, 64)]),
            ] {
                let sel =
                    HookSelection::select(&hooks, &[glob.to_string()], model.n_blocks()).unwrap();
                for (bb, ss) in bs {
                    let flat: Vec<u32> = (0..bb * ss).map(|i| (i % 50) as u32 + 3).collect();
                    let batch = Batch {
                        ids: Tensor::from_vec(flat.clone(), (bb, ss), &Device::Cpu).unwrap(),
                        host_ids: flat,
                        lens: vec![ss; bb],
                        seq: ss,
                    };
                    let b = start();
                    let mut cap = Capture::new(&sel);
                    model
                        .forward(&batch, sel.blocks_needed, sel.needs_final, &mut cap)
                        .unwrap();
                    let (p, r) = peak(b);
                    println!("           fwd {glob} b{bb} s{ss}: peak {p:>8} retained {r:>8} Td={} BHSS={}", bb*ss*32*4, bb*4*ss*ss*4);
                }
            }
        }
    }
}
