// Loads a GGUF file as ik_llama.cpp's model loader does (gguf_init_from_file with no_alloc, then
// each tensor's bytes from data offset + tensor offset, ggml_nbytes long) and writes every tensor
// decoded to float32 by ggml's own type traits to <out>/<index>.f32 (the raw bytes to
// <out>/<index>.raw), plus a listing on stdout: index, name, type id, ne0, nrows, decodable.
// (gguf_init_from_file with no_alloc = false sizes its data blob with ggml_row_size over the
// whole tensor, i.e. counts a row-scale type's per-row metadata once per tensor, and so reads
// the last tensors of such a file short; the model loader does not use that path.)
#include "ggml.h"
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char ** argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s file.gguf outdir\n", argv[0]); return 2; }
    struct ggml_context * meta = nullptr;
    struct gguf_init_params params = { /*no_alloc*/ true, /*ctx*/ &meta };
    struct gguf_context * ctx = gguf_init_from_file(argv[1], params);
    if (!ctx) { fprintf(stderr, "gguf_init_from_file failed\n"); return 1; }
    FILE * file = fopen(argv[1], "rb");
    const int n = gguf_get_n_tensors(ctx);
    for (int i = 0; i < n; ++i) {
        const char * name = gguf_get_tensor_name(ctx, i);
        struct ggml_tensor * t = ggml_get_tensor(meta, name);
        const int64_t ne0 = t->ne[0], nrows = ggml_nrows(t);
        std::vector<char> bytes(ggml_nbytes(t));
        if (fseek(file, (long) (gguf_get_data_offset(ctx) + gguf_get_tensor_offset(ctx, i)), SEEK_SET) != 0 ||
            fread(bytes.data(), 1, bytes.size(), file) != bytes.size()) {
            fprintf(stderr, "tensor %s: cannot read %zu bytes\n", name, bytes.size());
            return 1;
        }
        auto tr = ggml_internal_get_type_traits(t->type);
        const bool decodable = t->type == GGML_TYPE_F32 || tr.to_float;
        printf("%d %s %d %lld %lld %d\n", i, name, (int) t->type, (long long) ne0, (long long) nrows, (int) decodable);
        {
            std::string rp = std::string(argv[2]) + "/" + std::to_string(i) + ".raw";
            FILE * f = fopen(rp.c_str(), "wb");
            fwrite(bytes.data(), 1, bytes.size(), f);
            fclose(f);
        }
        if (!decodable) continue;
        std::vector<float> out(ne0 * nrows);
        if (t->type == GGML_TYPE_F32) {
            memcpy(out.data(), bytes.data(), out.size() * 4);
        } else {
            // the decoder's unit: one row, or one group of 4 rows for the interleaved _r4 types
            const std::string tn = tr.type_name;
            const int64_t g = tn.size() > 3 && tn.compare(tn.size() - 3, 3, "_r4") == 0 ? 4 : 1;
            const size_t rs = ggml_row_size(t->type, ne0);
            for (int64_t r = 0; r < nrows; r += g) {
                tr.to_float(bytes.data() + r * rs, out.data() + r * ne0, g * ne0);
            }
        }
        std::string path = std::string(argv[2]) + "/" + std::to_string(i) + ".f32";
        FILE * f = fopen(path.c_str(), "wb");
        fwrite(out.data(), 4, out.size(), f);
        fclose(f);
    }
    fclose(file);
    gguf_free(ctx);
    ggml_free(meta);
    return 0;
}
