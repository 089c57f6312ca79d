# Package the generated RTL kernel as a Vivado IP that Vitis accepts
# (an "sdx_kernel" of type rtl). Run by `make bitstream`:
#   vivado -mode batch -source constraints/package_kernel.tcl -tclargs BUILD_DIR PART FREQ_HZ
# BUILD_DIR holds rtl/*.v and kernel.xml (python -m fixar.gen.kernel.vitis writes them).
set build   [file normalize [lindex $argv 0]]
set part    [lindex $argv 1]
set freq_hz [lindex $argv 2]
set kernel  fixar_kernel
set ipdir   $build/ip

create_project -force kernel_pack $build/kernel_pack -part $part
add_files [glob $build/rtl/*.v]
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
if {[llength [ipx::get_bus_parameters FREQ_HZ -of_objects $clkif]] == 0} {
    ipx::add_bus_parameter FREQ_HZ $clkif
}
set_property value $freq_hz [ipx::get_bus_parameters FREQ_HZ -of_objects $clkif]

# The register map of kernel.xml on the control interface (offsets from fixar.gen.kernel.top.Kernel.ARGS)
set mm [ipx::add_memory_map s_axi_control $core]
set_property slave_memory_map_ref s_axi_control [ipx::get_bus_interfaces s_axi_control -of_objects $core]
set blk [ipx::add_address_block reg0 $mm]
set_property range 0x1000 $blk

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
