// Hand-written stand-ins for a streamfold accelerator, used ONLY to test the simulation runners
// (streamfold.sim.run). Port contract: clk, rst (active-high synchronous), s_axis_* in, m_axis_* out.
//
// sf_standin_core: each accepted input beat x becomes the output beat (x * MUL + ADD) mod 2^OUT_W
// (x zero-extended), through a 2-deep skid buffer (full throughput, 1 cycle latency);
// m_axis_tlast is high on every N-th output beat. Input tlast is ignored.
module sf_standin_core #(
    parameter IN_W = 8,
    parameter OUT_W = 8,
    parameter N = 4,
    parameter MUL = 1,
    parameter ADD = 1
) (
    input  wire             clk,
    input  wire             rst,
    input  wire [IN_W-1:0]  s_axis_tdata,
    input  wire             s_axis_tvalid,
    output wire             s_axis_tready,
    input  wire             s_axis_tlast,
    output wire [OUT_W-1:0] m_axis_tdata,
    output wire             m_axis_tvalid,
    input  wire             m_axis_tready,
    output wire             m_axis_tlast
);
    localparam XW = (IN_W > OUT_W) ? IN_W : OUT_W;
    wire [XW-1:0] x = {{(XW-IN_W){1'b0}}, s_axis_tdata};
    wire [XW-1:0] fx = x * MUL + ADD;
    wire [OUT_W-1:0] y = fx[OUT_W-1:0];

    reg [OUT_W-1:0] mem0, mem1;
    reg last0, last1;
    reg [1:0] count;
    reg [31:0] beat;
    wire y_last = (beat == N - 1);

    assign s_axis_tready = (count != 2'd2);
    assign m_axis_tvalid = (count != 2'd0);
    assign m_axis_tdata = mem0;
    assign m_axis_tlast = last0;

    wire push = s_axis_tvalid & s_axis_tready;
    wire pop = m_axis_tvalid & m_axis_tready;

    always @(posedge clk) begin
        if (rst) begin
            count <= 2'd0;
            beat <= 32'd0;
            mem0 <= {OUT_W{1'b0}};
            mem1 <= {OUT_W{1'b0}};
            last0 <= 1'b0;
            last1 <= 1'b0;
        end else begin
            case ({push, pop})
                2'b10: begin
                    if (count == 2'd0) begin mem0 <= y; last0 <= y_last; end
                    else begin mem1 <= y; last1 <= y_last; end
                    count <= count + 2'd1;
                end
                2'b01: begin
                    mem0 <= mem1; last0 <= last1;
                    count <= count - 2'd1;
                end
                2'b11: begin
                    if (count == 2'd1) begin mem0 <= y; last0 <= y_last; end
                    else begin mem0 <= mem1; last0 <= last1; mem1 <= y; last1 <= y_last; end
                end
                default: ;
            endcase
            if (push) beat <= y_last ? 32'd0 : beat + 32'd1;
        end
    end
endmodule

// 8-bit in, 8-bit out, +1 mod 256, frames of 4 beats.
module sf_standin_add8 (
    input wire clk, input wire rst,
    input wire [7:0] s_axis_tdata, input wire s_axis_tvalid, output wire s_axis_tready,
    input wire s_axis_tlast,
    output wire [7:0] m_axis_tdata, output wire m_axis_tvalid, input wire m_axis_tready,
    output wire m_axis_tlast
);
    sf_standin_core #(.IN_W(8), .OUT_W(8), .N(4), .MUL(1), .ADD(1)) core (.*);
endmodule

// 200-bit in, 130-bit out (width-changing), y = (3x + 5) mod 2^130, frames of 3 beats.
module sf_standin_wide (
    input wire clk, input wire rst,
    input wire [199:0] s_axis_tdata, input wire s_axis_tvalid, output wire s_axis_tready,
    input wire s_axis_tlast,
    output wire [129:0] m_axis_tdata, output wire m_axis_tvalid, input wire m_axis_tready,
    output wire m_axis_tlast
);
    sf_standin_core #(.IN_W(200), .OUT_W(130), .N(3), .MUL(3), .ADD(5)) core (.*);
endmodule

// 40-bit in, 64-bit out (QData ports), y = (x * 7 + 1) mod 2^64, frames of 5 beats.
module sf_standin_q64 (
    input wire clk, input wire rst,
    input wire [39:0] s_axis_tdata, input wire s_axis_tvalid, output wire s_axis_tready,
    input wire s_axis_tlast,
    output wire [63:0] m_axis_tdata, output wire m_axis_tvalid, input wire m_axis_tready,
    output wire m_axis_tlast
);
    sf_standin_core #(.IN_W(40), .OUT_W(64), .N(5), .MUL(7), .ADD(1)) core (.*);
endmodule

// Deadlocks: accepts every input beat but never raises m_axis_tvalid.
module sf_standin_deadlock (
    input wire clk, input wire rst,
    input wire [7:0] s_axis_tdata, input wire s_axis_tvalid, output wire s_axis_tready,
    input wire s_axis_tlast,
    output wire [7:0] m_axis_tdata, output wire m_axis_tvalid, input wire m_axis_tready,
    output wire m_axis_tlast
);
    reg [7:0] seen;
    always @(posedge clk) if (rst) seen <= 8'd0; else if (s_axis_tvalid) seen <= s_axis_tdata;
    assign s_axis_tready = 1'b1;
    assign m_axis_tdata = seen;
    assign m_axis_tvalid = 1'b0;
    assign m_axis_tlast = 1'b0;
endmodule
