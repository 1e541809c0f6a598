// streamfold: plain Verilator C++ stream harness (no per-cycle Python).
//
// Compiled together with a design whose top is renamed to ``Vtop`` (verilator --prefix Vtop).
// Ports: clk, rst (active-high sync), s_axis_{tdata,tvalid,tready,tlast},
// m_axis_{tdata,tvalid,tready,tlast}. Any data width works (CData..QData and VlWide<N>).
//
// Arguments (all "--name value"):
//   --in FILE          input beats: hex text (one beat per line) or binary (see --in-format)
//   --in-format F      "hex" (default) or "bin" (each beat = in_port_words * 4 bytes, little endian)
//   --out FILE         output beats, one line each: "<cycle> <tlast> <hex data>"
//   --frames FILE      cycle of each input frame's first accepted beat, one per line
//   --summary FILE     JSON summary (status, cycles, handshake state at the end, ...)
//   --in-bpf N         input beats per frame (s_axis_tlast on every N-th beat)      [1]
//   --expect-out N     output beats expected in total (run ends once they arrived) [0]
//   --p-gap P          probability of an idle cycle before presenting a beat        [0]
//   --p-stall P        probability of m_axis_tready=0 in a cycle                    [0]
//   --seed S           seed of the two xorshift generators                          [0]
//   --stall-limit N    stop if no beat moves on either side for N cycles            [100000]
//   --max-cycles N     stop after N cycles                                          [2^62]
//   --reset-cycles N   cycles with rst=1 before cycle 0                             [4]
//   --tail-cycles N    cycles run after completion (m_axis_tready=1) to catch extra beats [16]
//
// Cycle numbering: cycle 0 is the first cycle after reset. A beat "moves in cycle c" when
// tvalid && tready are both high during cycle c, i.e. it is transferred on the rising edge that
// ends cycle c.
#include "Vtop.h"
#include "verilated.h"
#ifdef STREAMFOLD_PROBES
// Built with verilator --public-flat-rw (see streamfold.sim.run): every signal is in the scope
// tables, so a stalled run can report the handshake of each internal stream and FIFO levels.
#include "verilated_syms.h"
#endif

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

// ------------------------------------------------------------------ port access, any width
template <typename T>
struct Port {
    static constexpr size_t words = (sizeof(T) + 3) / 4;
    static constexpr size_t bytes = sizeof(T);
    static inline void set(T& p, const uint32_t* w) {
        uint64_t v = w[0];
        if (words > 1) v |= static_cast<uint64_t>(w[1]) << 32;
        p = static_cast<T>(v);
    }
    static inline void get(const T& p, uint32_t* w) {
        const uint64_t v = p;
        w[0] = static_cast<uint32_t>(v);
        if (words > 1) w[1] = static_cast<uint32_t>(v >> 32);
    }
};

template <std::size_t N>
struct Port<VlWide<N>> {
    static constexpr size_t words = N;
    static constexpr size_t bytes = 4 * N;
    static inline void set(VlWide<N>& p, const uint32_t* w) {
        for (size_t i = 0; i < N; ++i) p.at(i) = w[i];
    }
    static inline void get(const VlWide<N>& p, uint32_t* w) {
        for (size_t i = 0; i < N; ++i) w[i] = p.at(i);
    }
};

using InT = std::remove_cv_t<std::remove_reference_t<decltype(std::declval<Vtop&>().s_axis_tdata)>>;
using OutT = std::remove_cv_t<std::remove_reference_t<decltype(std::declval<Vtop&>().m_axis_tdata)>>;
using InPort = Port<InT>;
using OutPort = Port<OutT>;

// ------------------------------------------------------------------ random numbers
static inline uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

struct XorShift {
    uint64_t s;
    explicit XorShift(uint64_t seed) {
        uint64_t x = seed;
        s = splitmix64(x);
        if (s == 0) s = 0x2545F4914F6CDD1DULL;
    }
    inline uint64_t next() {  // xorshift64*
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1DULL;
    }
};

// An event of probability p: true when next() < threshold (p in [0, 1]).
struct Chance {
    XorShift rng;
    uint64_t thr;
    bool never, always;
    Chance(double p, uint64_t seed) : rng(seed), thr(0), never(p <= 0.0), always(p >= 1.0) {
        if (!never && !always) thr = static_cast<uint64_t>(p * 18446744073709551616.0);
    }
    inline bool operator()() {
        if (never) return false;
        if (always) return true;
        return rng.next() < thr;
    }
};

// ------------------------------------------------------------------ input files
static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void die(const char* msg, const char* arg = "") {
    std::fprintf(stderr, "harness: %s%s\n", msg, arg);
    std::exit(2);
}

// Hex text: one beat per line (no prefix), most significant digit first; blank lines ignored.
static size_t read_hex(const char* path, size_t words, std::vector<uint32_t>& out) {
    FILE* f = std::fopen(path, "rb");
    if (!f) die("cannot open input ", path);
    std::string line;
    size_t n = 0;
    char buf[1 << 16];
    auto flush_line = [&](void) {
        // strip whitespace
        size_t a = 0, b = line.size();
        while (a < b && (line[a] == ' ' || line[a] == '\t' || line[a] == '\r')) ++a;
        while (b > a && (line[b - 1] == ' ' || line[b - 1] == '\t' || line[b - 1] == '\r')) --b;
        if (a == b) { line.clear(); return; }
        size_t base = out.size();
        out.resize(base + words, 0u);
        size_t bit = 0;
        for (size_t i = b; i > a; --i) {
            int v = hexval(line[i - 1]);
            if (v < 0) die("bad hex digit in input ", path);
            if (v) {
                size_t w = bit / 32;
                if (w >= words) die("input beat wider than the s_axis_tdata port in ", path);
                out[base + w] |= static_cast<uint32_t>(v) << (bit % 32);
            }
            bit += 4;
        }
        ++n;
        line.clear();
    };
    size_t got;
    while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < got; ++i) {
            if (buf[i] == '\n') flush_line();
            else line.push_back(buf[i]);
        }
    }
    flush_line();
    std::fclose(f);
    return n;
}

static size_t read_bin(const char* path, size_t words, std::vector<uint32_t>& out) {
    FILE* f = std::fopen(path, "rb");
    if (!f) die("cannot open input ", path);
    std::fseek(f, 0, SEEK_END);
    long len = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    const size_t beat_bytes = words * 4;
    if (len < 0 || static_cast<size_t>(len) % beat_bytes) die("binary input size is not a multiple of the beat size: ", path);
    size_t n = static_cast<size_t>(len) / beat_bytes;
    out.resize(n * words);
    std::vector<unsigned char> raw(static_cast<size_t>(len));
    if (len && std::fread(raw.data(), 1, raw.size(), f) != raw.size()) die("short read on ", path);
    std::fclose(f);
    for (size_t i = 0; i < n * words; ++i) {
        const unsigned char* p = &raw[i * 4];
        out[i] = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
    }
    return n;
}

// Buffered writer of output lines "<cycle> <tlast> <hex>\n" (printf is slow at ~1 line/cycle).
struct LineWriter {
    FILE* f;
    std::vector<char> buf;
    size_t n = 0;
    explicit LineWriter(FILE* file, size_t words) : f(file), buf((1 << 20) + 32 + 8 * words) {}
    inline void flush() {
        if (n) std::fwrite(buf.data(), 1, n, f);
        n = 0;
    }
    inline void put_dec(uint64_t v) {
        char tmp[24];
        int k = 0;
        do { tmp[k++] = static_cast<char>('0' + v % 10); v /= 10; } while (v);
        while (k) buf[n++] = tmp[--k];
    }
    inline void put_hex_word(uint32_t v, bool pad) {
        static const char digits[] = "0123456789abcdef";
        int top = 7;
        if (!pad) while (top > 0 && ((v >> (4 * top)) & 0xF) == 0) --top;
        for (int d = top; d >= 0; --d) buf[n++] = digits[(v >> (4 * d)) & 0xF];
    }
    inline void line(uint64_t cyc, bool last, const uint32_t* w, size_t words) {
        if (n + 32 + 8 * words > buf.size()) flush();
        put_dec(cyc);
        buf[n++] = ' ';
        buf[n++] = last ? '1' : '0';
        buf[n++] = ' ';
        size_t top = words;
        while (top > 1 && w[top - 1] == 0) --top;
        put_hex_word(w[top - 1], false);
        for (size_t i = top - 1; i > 0; --i) put_hex_word(w[i - 1], true);
        buf[n++] = '\n';
    }
};

#ifdef STREAMFOLD_PROBES
// ", \"probes\": [[scope, name, value], ...]" for the stream handshakes (i__/o__ valid/ready)
// and occupancy registers (level, valid, skid_valid) of every scope: the state a stall froze.
static void write_probes(VerilatedContext* ctx, FILE* fs) {
    static const char* const names[] = {"i__valid", "i__ready", "o__valid", "o__ready", "level",
                                        "valid", "skid_valid"};
    std::fprintf(fs, ", \"probes\": [");
    bool first = true;
    const VerilatedScopeNameMap* scopes = ctx->scopeNameMap();
    if (scopes) {
        for (const auto& sc : *scopes) {
            const VerilatedVarNameMap* vars = sc.second->varsp();
            if (!vars) continue;
            for (const auto& vv : *vars) {
                bool wanted = false;
                for (const char* n : names) wanted = wanted || std::strcmp(vv.first, n) == 0;
                if (!wanted) continue;
                const VerilatedVar& var = vv.second;
                uint64_t v;
                switch (var.vltype()) {
                case VLVT_UINT8: v = *static_cast<const CData*>(var.datap()); break;
                case VLVT_UINT16: v = *static_cast<const SData*>(var.datap()); break;
                case VLVT_UINT32: v = *static_cast<const IData*>(var.datap()); break;
                case VLVT_UINT64: v = *static_cast<const QData*>(var.datap()); break;
                default: continue;
                }
                std::fprintf(fs, "%s[\"%s\", \"%s\", %" PRIu64 "]", first ? "" : ", ", sc.first,
                             vv.first, v);
                first = false;
            }
        }
    }
    std::fprintf(fs, "]");
}
#endif

// ------------------------------------------------------------------ main
int main(int argc, char** argv) {
    const char* in_path = nullptr;
    const char* out_path = nullptr;
    const char* frames_path = nullptr;
    const char* summary_path = nullptr;
    std::string in_format = "hex";
    uint64_t in_bpf = 1, expect_out = 0, seed = 0, stall_limit = 100000;
    uint64_t max_cycles = 1ULL << 62, reset_cycles = 4, tail_cycles = 16;
    double p_gap = 0.0, p_stall = 0.0;

    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a.rfind("+verilator", 0) == 0) continue;  // let Verilated handle its own plusargs
        if (i + 1 >= argc) die("missing value for ", argv[i]);
        const char* v = argv[++i];
        if (a == "--in") in_path = v;
        else if (a == "--in-format") in_format = v;
        else if (a == "--out") out_path = v;
        else if (a == "--frames") frames_path = v;
        else if (a == "--summary") summary_path = v;
        else if (a == "--in-bpf") in_bpf = std::strtoull(v, nullptr, 0);
        else if (a == "--expect-out") expect_out = std::strtoull(v, nullptr, 0);
        else if (a == "--p-gap") p_gap = std::strtod(v, nullptr);
        else if (a == "--p-stall") p_stall = std::strtod(v, nullptr);
        else if (a == "--seed") seed = std::strtoull(v, nullptr, 0);
        else if (a == "--stall-limit") stall_limit = std::strtoull(v, nullptr, 0);
        else if (a == "--max-cycles") max_cycles = std::strtoull(v, nullptr, 0);
        else if (a == "--reset-cycles") reset_cycles = std::strtoull(v, nullptr, 0);
        else if (a == "--tail-cycles") tail_cycles = std::strtoull(v, nullptr, 0);
        else die("unknown argument ", argv[i - 1]);
    }
    if (!in_path || !out_path || !summary_path) die("need --in, --out and --summary");
    if (in_bpf == 0) in_bpf = 1;
    if (stall_limit == 0) stall_limit = 1;

    std::vector<uint32_t> in_words;
    const size_t IW = InPort::words, OW = OutPort::words;
    size_t n_in = (in_format == "bin") ? read_bin(in_path, IW, in_words) : read_hex(in_path, IW, in_words);

    FILE* fout = std::fopen(out_path, "w");
    if (!fout) die("cannot write ", out_path);
    LineWriter wout(fout, OutPort::words);
    FILE* ffr = frames_path ? std::fopen(frames_path, "w") : nullptr;
    if (frames_path && !ffr) die("cannot write ", frames_path);

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    auto top = std::make_unique<Vtop>(ctx.get(), "top");

    uint64_t sd = seed;
    const uint64_t seed_gap = splitmix64(sd), seed_stall = splitmix64(sd);
    Chance gap(p_gap, seed_gap), stall(p_stall, seed_stall);

    // reset
    top->clk = 0;
    top->rst = 1;
    top->s_axis_tvalid = 0;
    top->s_axis_tlast = 0;
    top->m_axis_tready = 0;
    top->eval();
    for (uint64_t i = 0; i < reset_cycles; ++i) {
        top->clk = 0; top->eval(); ctx->timeInc(1);
        top->clk = 1; top->eval(); ctx->timeInc(1);
    }
    top->rst = 0;

    std::vector<uint32_t> obuf(OW);
    uint64_t cyc = 0, idle = 0, n_out = 0, done_cycle = 0, tail_left = 0, extra = 0;
    size_t in_idx = 0;
    bool s_valid = false, completed = false;
    int st_sv = 0, st_sr = 0, st_mv = 0, st_mr = 0;
    const char* status = "running";
    auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();

    for (;;) {
        if (!completed) {
            if (in_idx >= n_in && n_out >= expect_out) {
                completed = true;
                done_cycle = cyc;
                tail_left = tail_cycles;
            } else if (idle >= stall_limit) {
                status = "stall";
                break;
            } else if (cyc >= max_cycles) {
                status = "cycle_limit";
                break;
            }
        }
        if (completed) {
            if (tail_left == 0) { status = "done"; break; }
            --tail_left;
        }
        if (ctx->gotFinish()) { status = "finish"; break; }

        // drive this cycle's inputs (AXI: once valid, hold the beat until it is accepted)
        if (!s_valid && in_idx < n_in && !gap()) {
            s_valid = true;
            InPort::set(top->s_axis_tdata, &in_words[in_idx * IW]);
            top->s_axis_tlast = (in_idx % in_bpf) == in_bpf - 1;
        }
        const bool ready = completed ? true : !stall();
        top->s_axis_tvalid = s_valid;
        top->m_axis_tready = ready;
        top->clk = 0;
        top->eval();
        ctx->timeInc(1);

        const bool s_ready = top->s_axis_tready;
        const bool m_valid = top->m_axis_tvalid;
        const bool in_fire = s_valid && s_ready;
        const bool out_fire = m_valid && ready;
        if (out_fire) {
            OutPort::get(top->m_axis_tdata, obuf.data());
            wout.line(cyc, top->m_axis_tlast, obuf.data(), OW);
            ++n_out;
            if (completed) ++extra;
        }
        if (in_fire) {
            if (ffr && in_idx % in_bpf == 0) std::fprintf(ffr, "%" PRIu64 "\n", cyc);
            ++in_idx;
            s_valid = false;
        }
        st_sv = s_valid || in_fire; st_sr = s_ready; st_mv = m_valid; st_mr = ready;

        top->clk = 1;
        top->eval();
        ctx->timeInc(1);
        ++cyc;
        idle = (in_fire || out_fire) ? 0 : idle + 1;
    }
    wout.flush();
    auto t1 = std::chrono::steady_clock::now();
    const std::clock_t c1 = std::clock();
    top->final();
    std::fclose(fout);
    if (ffr) std::fclose(ffr);

    const double wall = std::chrono::duration<double>(t1 - t0).count();
    FILE* fs = std::fopen(summary_path, "w");
    if (!fs) die("cannot write ", summary_path);
    std::fprintf(fs,
                 "{\"status\": \"%s\", \"cycles\": %" PRIu64 ", \"cycles_run\": %" PRIu64
                 ", \"in_beats\": %zu, \"in_accepted\": %zu, \"out_beats\": %" PRIu64
                 ", \"extra_out_beats\": %" PRIu64 ", \"idle_cycles\": %" PRIu64
                 ", \"s_axis_tvalid\": %d, \"s_axis_tready\": %d, \"m_axis_tvalid\": %d"
                 ", \"m_axis_tready\": %d, \"in_port_bytes\": %zu, \"out_port_bytes\": %zu"
                 ", \"wall_s\": %.6f, \"cpu_s\": %.6f",
                 status, completed ? done_cycle : cyc, cyc, n_in, in_idx, n_out, extra, idle, st_sv,
                 st_sr, st_mv, st_mr, InPort::bytes, OutPort::bytes, wall,
                 static_cast<double>(c1 - c0) / CLOCKS_PER_SEC);
#ifdef STREAMFOLD_PROBES
    write_probes(ctx.get(), fs);
#endif
    std::fprintf(fs, "}\n");
    std::fclose(fs);
    return 0;
}
