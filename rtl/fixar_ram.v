// Two-port synchronous RAMs, hand-written so that no initialiser is emitted
// (Amaranth's Memory writes one initialiser line per word: 383 KB of Verilog
// for one 16K-word bank) and so that Vivado and Yosys infer block RAM or
// UltraRAM from the usual templates. Port A reads; port B writes when b_we is
// high and reads otherwise (a true-dual-port RAM with one read-only port).
// Reads are registered: data appears the cycle after the address.
// The generator instantiates them through an Amaranth Instance (gen/ram.py)
// and picks the module per memory from memory.uram_min_rows in the config:
// fixar_ram (block RAM) or fixar_uram (UltraRAM). The two differ in one
// thing only: UltraRAM ports are "no change" (a write leaves the port's read
// data as it was), so fixar_uram's port B does not read while it writes.
// The design never uses port B's read data from a write cycle, so the two
// behave the same in it; the benches run both (the small config has both).
module fixar_ram #(
    parameter WIDTH = 32,
    parameter DEPTH = 1024,
    parameter ABITS = 10
) (
    input  wire             clk,
    input  wire [ABITS-1:0] a_addr,
    output reg  [WIDTH-1:0] a_data,
    input  wire [ABITS-1:0] b_addr,
    input  wire             b_we,
    input  wire [WIDTH-1:0] b_wdata,
    output reg  [WIDTH-1:0] b_data
);
    (* ram_style = "block" *)
    reg [WIDTH-1:0] mem [0:DEPTH-1];

`ifndef SYNTHESIS
    // Simulation only: start from zeros, as Xilinx block and UltraRAM do
    // after configuration. Without it a four-state simulator turns a masked
    // product of a never-written word (0 x X) into X; synthesis tools define
    // SYNTHESIS and skip this (no initialiser is emitted into the netlist).
    integer i;
    initial
        for (i = 0; i < DEPTH; i = i + 1)
            mem[i] = {WIDTH{1'b0}};
`endif

    always @(posedge clk)
        a_data <= mem[a_addr];

    always @(posedge clk) begin
        if (b_we)
            mem[b_addr] <= b_wdata;
        b_data <= mem[b_addr];
    end
endmodule


// Both templates live in one file (one source for the flow scripts and the
// simulators), so this module's name differs from the file's.
/* verilator lint_off DECLFILENAME */
module fixar_uram #(
    parameter WIDTH = 32,
    parameter DEPTH = 1024,
    parameter ABITS = 10
) (
    input  wire             clk,
    input  wire [ABITS-1:0] a_addr,
    output reg  [WIDTH-1:0] a_data,
    input  wire [ABITS-1:0] b_addr,
    input  wire             b_we,
    input  wire [WIDTH-1:0] b_wdata,
    output reg  [WIDTH-1:0] b_data
);
    (* ram_style = "ultra" *)
    reg [WIDTH-1:0] mem [0:DEPTH-1];

`ifndef SYNTHESIS
    // Simulation only: zeros, as UltraRAM holds after configuration.
    integer i;
    initial
        for (i = 0; i < DEPTH; i = i + 1)
            mem[i] = {WIDTH{1'b0}};
`endif

    always @(posedge clk)
        a_data <= mem[a_addr];

    always @(posedge clk) begin
        if (b_we)
            mem[b_addr] <= b_wdata;
        else
            b_data <= mem[b_addr];
    end
endmodule
/* verilator lint_on DECLFILENAME */


// The same RAMs with both ports writable (true dual port, two writes a
// cycle): the feature-major and mask memories, where a packed QAT product's
// store writes two batch vectors per beat, the second through port A, which
// otherwise only reads (a gradient product's or a masked product's rows;
// never in the same operation as such a store). The two ports never write
// one address in one cycle (the store's two words of a bank are different
// features, so different rows).
/* verilator lint_off DECLFILENAME */
/* verilator lint_off MULTIDRIVEN */
module fixar_ram_tdp #(
    parameter WIDTH = 32,
    parameter DEPTH = 1024,
    parameter ABITS = 10
) (
    input  wire             clk,
    input  wire [ABITS-1:0] a_addr,
    input  wire             a_we,
    input  wire [WIDTH-1:0] a_wdata,
    output reg  [WIDTH-1:0] a_data,
    input  wire [ABITS-1:0] b_addr,
    input  wire             b_we,
    input  wire [WIDTH-1:0] b_wdata,
    output reg  [WIDTH-1:0] b_data
);
    (* ram_style = "block" *)
    reg [WIDTH-1:0] mem [0:DEPTH-1];

`ifndef SYNTHESIS
    integer i;
    initial
        for (i = 0; i < DEPTH; i = i + 1)
            mem[i] = {WIDTH{1'b0}};
`endif

    always @(posedge clk) begin
        if (a_we)
            mem[a_addr] <= a_wdata;
        a_data <= mem[a_addr];
    end

    always @(posedge clk) begin
        if (b_we)
            mem[b_addr] <= b_wdata;
        b_data <= mem[b_addr];
    end
endmodule


module fixar_uram_tdp #(
    parameter WIDTH = 32,
    parameter DEPTH = 1024,
    parameter ABITS = 10
) (
    input  wire             clk,
    input  wire [ABITS-1:0] a_addr,
    input  wire             a_we,
    input  wire [WIDTH-1:0] a_wdata,
    output reg  [WIDTH-1:0] a_data,
    input  wire [ABITS-1:0] b_addr,
    input  wire             b_we,
    input  wire [WIDTH-1:0] b_wdata,
    output reg  [WIDTH-1:0] b_data
);
    (* ram_style = "ultra" *)
    reg [WIDTH-1:0] mem [0:DEPTH-1];

`ifndef SYNTHESIS
    integer i;
    initial
        for (i = 0; i < DEPTH; i = i + 1)
            mem[i] = {WIDTH{1'b0}};
`endif

    // One block, in the order UltraRAM defines (Yosys maps nothing else to
    // it): port A's write wins over B's, B's read sees A's write of the same
    // cycle, A's read B's old word, and neither port reads while it writes.
    // The design never gives both ports one address in one cycle.
    always @(posedge clk) begin
        if (b_we)
            mem[b_addr] <= b_wdata;
        if (a_we)
            mem[a_addr] <= a_wdata;
        if (!a_we)
            a_data <= mem[a_addr];
        if (!b_we)
            b_data <= (a_we && a_addr == b_addr) ? a_wdata : mem[b_addr];
    end
endmodule
/* verilator lint_on MULTIDRIVEN */
/* verilator lint_on DECLFILENAME */
