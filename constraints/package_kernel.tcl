# Package the generated RTL kernel as a Vivado IP that Vitis accepts
# (an "sdx_kernel" of type rtl). Run by `make bitstream`:
#   vivado -mode batch -source constraints/package_kernel.tcl -tclargs BUILD_DIR PART FREQ_HZ
# BUILD_DIR is what `python -m fixar.gen.kernel.vitis` writes: sources.txt (the
# kernel's own Verilog files), registers.tcl (the register map, from
# fixar.gen.kernel.top.Kernel.ARGS) and kernel.xml. FREQ_HZ is the target
# clock (the config's, passed by the Makefile); v++ --kernel_frequency may
# override it (value_resolve_type user).
# Written after Xilinx/Vitis_Accel_Examples rtl_kernels/rtl_vadd/scripts/package_kernel.tcl.
if {$argc != 3} {
    error "usage: vivado -mode batch -source package_kernel.tcl -tclargs BUILD_DIR PART FREQ_HZ"
}
set build   [file normalize [lindex $argv 0]]
set part    [lindex $argv 1]
set freq_hz [lindex $argv 2]
set kernel  fixar_kernel
set ipdir   $build/ip

# Only the kernel's files: the rtl folder also holds the unit designs' Verilog.
proc fixar_sources {build} {
    set fh [open $build/sources.txt r]
    set files {}
    foreach line [split [read $fh] "\n"] {
        set line [string trim $line]
        if {$line ne ""} { lappend files $build/$line }
    }
    close $fh
    return $files
}

create_project -force kernel_pack $build/kernel_pack -part $part
add_files -norecurse [fixar_sources $build]
set_property top $kernel [current_fileset]
update_compile_order -fileset sources_1

ipx::package_project -root_dir $ipdir -vendor fixar.org -library kernel -taxonomy /KernelIP \
    -import_files -set_current false
ipx::unload_core $ipdir/component.xml
ipx::edit_ip_in_project -upgrade true -name tmp_edit_project -directory $ipdir $ipdir/component.xml
set core [ipx::current_core]
set_property core_revision 1 $core
foreach up [ipx::get_user_parameters -of_objects $core] {
    ipx::remove_user_parameter [get_property NAME $up] $core
}

# Both AXI interfaces run on ap_clk; the clock interface carries the target frequency.
ipx::associate_bus_interfaces -busif s_axi_control -clock ap_clk $core
ipx::associate_bus_interfaces -busif m_axi_gmem -clock ap_clk $core
set clkif [ipx::get_bus_interfaces ap_clk -of_objects $core]
set freq  [ipx::get_bus_parameters FREQ_HZ -of_objects $clkif]
if {[llength $freq] == 0} { set freq [ipx::add_bus_parameter FREQ_HZ $clkif] }
set_property value $freq_hz $freq
set_property value_resolve_type user $freq

# The control interface's memory map and address block: package_project may
# already have inferred them from the AXI4-Lite port, so get them or create them.
set mm [ipx::get_memory_maps s_axi_control -of_objects $core]
if {[llength $mm] == 0} { set mm [ipx::add_memory_map s_axi_control $core] }
set_property slave_memory_map_ref s_axi_control [ipx::get_bus_interfaces s_axi_control -of_objects $core]
set blk [ipx::get_address_blocks reg0 -of_objects $mm]
if {[llength $blk] == 0} { set blk [ipx::add_address_block reg0 $mm] }

# One register (got or created): its offset, width and, for a buffer
# argument, the master it addresses (ASSOCIATED_BUSIF).
proc fixar_register {name offset bits {busif ""}} {
    global blk
    set reg [ipx::get_registers $name -of_objects $blk]
    if {[llength $reg] == 0} { set reg [ipx::add_register $name $blk] }
    set_property address_offset $offset $reg
    set_property size $bits $reg
    if {$busif ne ""} {
        set param [ipx::get_register_parameters ASSOCIATED_BUSIF -of_objects $reg]
        if {[llength $param] == 0} { set param [ipx::add_register_parameter ASSOCIATED_BUSIF $reg] }
        set_property value $busif $param
    }
}
# the block's range and the registers (generated: registers.tcl)
source $build/registers.tcl

set_property xpm_libraries {XPM_CDC XPM_MEMORY XPM_FIFO} $core
set_property sdx_kernel true $core
set_property sdx_kernel_type rtl $core
set_property supported_families {} $core
set_property auto_family_support_level level_2 $core
ipx::create_xgui_files $core
ipx::update_checksums $core
ipx::check_integrity -kernel $core
ipx::save_core $core
close_project -delete
puts "packaged $kernel into $ipdir"
