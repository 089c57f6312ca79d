# Turn the packaged IP into a Vitis kernel object (.xo). Run by `make bitstream`:
#   vivado -mode batch -source constraints/gen_xo.tcl -tclargs BUILD_DIR
set build  [file normalize [lindex $argv 0]]
set kernel fixar_kernel
if {[file exists $build/$kernel.xo]} { file delete -force $build/$kernel.xo }
package_xo -xo_path $build/$kernel.xo -kernel_name $kernel -ip_directory $build/ip \
    -kernel_xml $build/kernel.xml
puts "wrote $build/$kernel.xo"
