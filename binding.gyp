# The node-gyp description of the addon that CMakeLists.txt builds with
# cmake-js, for tools that expect node-gyp (electron-rebuild, prebuildify):
# the same sources and definitions (native/sources.json), the same LibTorch
# (scripts/libtorch.js). Builds build/Release/torchexplain.node.
{
  "targets": [
    {
      "target_name": "torchexplain",
      "sources": [
        "<!@(node -p \"const s = require('./native/sources.json'); s.core.concat(s.addon).join(' ')\")"
      ],
      "include_dirs": [
        "native/core",
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/libtorch.js include-dirs)"
      ],
      "defines": [
        "<!@(node -p \"require('./native/sources.json').addonDefines.join(' ')\")",
        "<!@(node scripts/libtorch.js defines)"
      ],
      "libraries": ["<!@(node scripts/libtorch.js libraries)"],
      # LibTorch's headers need exceptions and RTTI, which Node's defaults turn off.
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-Wno-unused-parameter"]
    }
  ]
}
