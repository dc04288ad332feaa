//! One AFL++ binary for every fuzz target: `SFT_EVAL_FUZZ_TARGET` names the target
//! (`sft_eval::fuzz::TARGETS`).

fn main() {
    let name = std::env::var("SFT_EVAL_FUZZ_TARGET").expect("set SFT_EVAL_FUZZ_TARGET");
    let target = sft_eval::fuzz::target(&name).expect("a target of sft_eval::fuzz::TARGETS");
    afl::fuzz!(|data: &[u8]| {
        (target.run)(data);
    });
}
