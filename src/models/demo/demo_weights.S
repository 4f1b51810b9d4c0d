// The demo model's weights, embedded in the binary byte for byte as the safetensors files
// beside this file (written by training/demo/export.py). .incbin keeps the build fast: the
// assembler copies the bytes, where a C array of 7 MB would take the compiler minutes.
// CMake passes this folder to the assembler (-Wa,-I) and lists the files as dependencies.

        .section .rodata.raylight_demo, "a"
        .balign 64
        .globl raylight_demo_dit_begin
        .globl raylight_demo_dit_end
raylight_demo_dit_begin:
        .incbin "demo_dit.safetensors"
raylight_demo_dit_end:
        .balign 64
        .globl raylight_demo_vae_begin
        .globl raylight_demo_vae_end
raylight_demo_vae_begin:
        .incbin "demo_vae.safetensors"
raylight_demo_vae_end:

        .section .note.GNU-stack, "", %progbits
