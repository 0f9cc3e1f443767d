// The wasm codecs offered to Python: JPEG-LS (CharLS), JPEG 2000 (OpenJPEG) and HTJ2K (OpenJPH),
// registered with dcmstudio.codecs as functions fn(data, params) that Python calls synchronously
// (see register_decoder and register_encoder there for the layout of samples). build.py copies
// the emscripten modules into dist/codecs/ and names them in runtime.json; their wasm is fetched
// from this origin only.

const CODECS = {
  charls: {
    label: "JPEG-LS",
    decodes: ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"],
    encodes: "1.2.840.10008.1.2.4.80",
    Decoder: "JpegLSDecoder",
    Encoder: "JpegLSEncoder",
    configure(encoder, params) {
      encoder.setNearLossless(0);
      // Colour-by-pixel in, sample-interleaved in the codestream (DICOM's Planar Configuration 0).
      if (params.samples_per_pixel > 1) encoder.setInterleaveMode(2);
    },
    // JPEG-LS has no sign: signed samples are stored as their bits_stored-bit two's complement,
    // which pydicom sign-extends again when decoding.
    masksSignedSamples: true,
  },
  openjpeg: {
    label: "JPEG 2000",
    decodes: ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"],
    // lossless, and lossy (irreversible 9/7 wavelet) at the ratio Python passes as compression_ratio
    encodes: ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"],
    Decoder: "J2KDecoder",
    Encoder: "J2KEncoder",
    configure(encoder, params) {
      // OpenJPEG refuses more resolution levels than the smaller side allows.
      encoder.setDecompositions(Math.min(5, Math.floor(Math.log2(Math.min(params.rows, params.columns)))));
      if (params.compression_ratio) {
        encoder.setQuality(false, 1); // one quality layer, at the ratio (OpenJPEG counts it against bits stored)
        encoder.setCompressionRatio(0, params.compression_ratio);
      } else {
        encoder.setQuality(true, 0);
      }
    },
    // This build's encoder traps on colour deeper than 8 bits.
    encodesDeepColour: false,
  },
  openjph: {
    label: "HTJ2K",
    decodes: ["1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"],
    encodes: "1.2.840.10008.1.2.4.201",
    Decoder: "HTJ2KDecoder",
    Encoder: "HTJ2KEncoder",
    configure(encoder) {
      encoder.setQuality(true, 0);
    },
    // This build's colour codestreams decode differently in OpenJPEG (pylibjpeg), and its own
    // round trip of colour deeper than 8 bits scrambles it: greyscale only, both ways.
    colour: false,
  },
};

// Requests that may decode pixels wait for the codecs: one that never starts must not hang them.
const LOAD_TIMEOUT_MS = 30000;
// Lines a codec printed lately; OpenJPEG and OpenJPH report their errors only so.
const MESSAGES_KEPT = 20;
// Thrown where a codec returned without decoding: its printed error line says why.
const SEE_PRINTED_ERROR = Symbol("see the codec's printed error");

function withTimeout(promise, ms) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`it did not start within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

// One codec's emscripten module, instantiated synchronously from its compiled wasm, so that it can
// be started again at once after a trap (which leaves its memory unusable).
async function loadModule(files, siteRoot, label) {
  const { default: factory } = await import(new URL(files.module, siteRoot).href);
  const response = await fetch(new URL(files.wasm, siteRoot));
  if (!response.ok) throw new Error(`HTTP ${response.status} for ${files.wasm}`);
  const compiled = await WebAssembly.compileStreaming(response);
  const messages = [];
  const keep = (line) => {
    messages.push(String(line));
    if (messages.length > MESSAGES_KEPT) messages.shift();
  };
  const start = () => {
    // Each instance fills in the object it is given, so every start gets a new one.
    const module = {
      print: keep,
      printErr: keep,
      instantiateWasm(imports, receive) {
        const instance = new WebAssembly.Instance(compiled, imports);
        receive(instance, compiled);
        return instance.exports;
      },
    };
    factory(module);
    if (!module.calledRun) throw new Error(`${files.module} did not start its runtime`);
    return module;
  };
  const holder = {
    module: start(),
    // Runs work(module) to `action` a frame. A trap restarts the module; what the codec threw
    // (C++ exceptions arrive as bare numbers) becomes an Error in its own words.
    use(action, work) {
      messages.length = 0;
      try {
        return work(holder.module);
      } catch (error) {
        const trapped = error instanceof WebAssembly.RuntimeError;
        if (trapped) holder.module = start();
        if (error instanceof Error && !trapped) throw error;
        const printed = messages.filter((m) => /error|fail/i.test(m)).pop();
        const reason = trapped ? error.message : printed || "the codec gave no reason";
        throw new Error(`${label} could not ${action} this frame: ${reason}`);
      }
    },
  };
  return holder;
}

// Python's dict of parameters as a plain object (the proxy is Python's to destroy).
const plain = (params) => params.toJs({ dict_converter: Object.fromEntries });

// Copies a Python bytes-like object into the codec's memory (one copy, no intermediate array).
function copyIn(data, allocate) {
  const view = data.getBuffer("u8");
  try {
    const target = allocate(view.data.length);
    if (view.data.length !== target.length) {
      throw new Error(`the frame holds ${view.data.length} bytes where the codec expects ${target.length}`);
    }
    target.set(view.data);
    return target;
  } finally {
    view.release();
  }
}

function decoderFor(codec, holder) {
  return (data, params) => {
    const expected = plain(params);
    if (expected.samples_per_pixel > 1 && codec.colour === false) {
      throw new Error(`${codec.label} colour is not decoded here: ` +
        "this codec's colour is not read alike by other decoders");
    }
    return holder.use("decode", (module) => {
      const decoder = new module[codec.Decoder]();
      try {
        copyIn(data, (length) => decoder.getEncodedBuffer(length));
        decoder.decode();
        const info = decoder.getFrameInfo();
        if (!info.width) throw SEE_PRINTED_ERROR;
        const { columns, rows, samples_per_pixel: samples } = expected;
        if (info.width !== columns || info.height !== rows || info.componentCount !== samples) {
          throw new Error(`the ${codec.label} codestream is ${info.width} × ${info.height} × ` +
            `${info.componentCount} (columns × rows × samples), the header says ${columns} × ${rows} × ${samples}`);
        }
        if (info.bitsPerSample > 16) {
          throw new Error(`${codec.label} samples of ${info.bitsPerSample} bits are not decoded here`);
        }
        const result = { data: decoder.getDecodedBuffer().slice() };
        // CharLS returns colour as it was interleaved: mode 0 is one plane after another.
        if (info.componentCount > 1 && decoder.getInterleaveMode?.() === 0) result.planar_configuration = 1;
        return result;
      } finally {
        decoder.delete();
      }
    });
  };
}

// Reads the COD marker of a JPEG 2000 main header: whether a colour transform was applied.
function usesColourTransform(codestream) {
  let at = 2; // after SOC
  while (at + 9 <= codestream.length && codestream[at] === 0xff) {
    const marker = codestream[at + 1];
    if (marker === 0x52) return codestream[at + 8] !== 0; // Lcod, Scod, progression, layers, MCT
    if (marker === 0x90) break; // the first tile: the main header is over
    at += 2 + ((codestream[at + 2] << 8) | codestream[at + 3]);
  }
  return false;
}

// Why `codec` does not write these samples, or null.
function whyNotEncoded(codec, p) {
  if (p.bits_stored > 16) return `${codec.label} is written here for up to 16 bits stored, not ${p.bits_stored}`;
  if (p.bits_stored <= 8 && p.bits_allocated > 8) {
    return `${codec.label} is not written here for ${p.bits_stored}-bit samples in ${p.bits_allocated}-bit words`;
  }
  if (p.samples_per_pixel > 1 && codec.colour === false) {
    return `${codec.label} is written here for greyscale only: this codec's colour is not read alike by other decoders`;
  }
  if (p.samples_per_pixel > 1 && p.bits_stored > 8 && codec.encodesDeepColour === false) {
    return `${codec.label} is written here for colour of up to 8 bits, not ${p.bits_stored}`;
  }
  return null;
}

function encoderFor(codec, holder) {
  return (data, params) => {
    const p = plain(params);
    const refusal = whyNotEncoded(codec, p);
    if (refusal) throw new Error(refusal);
    return holder.use("encode", (module) => {
      const encoder = new module[codec.Encoder]();
      try {
        const frameInfo = {
          width: p.columns, height: p.rows, bitsPerSample: p.bits_stored, componentCount: p.samples_per_pixel,
          isSigned: p.pixel_representation === 1, isUsingColorTransform: false,
        };
        const target = copyIn(data, () => encoder.getDecodedBuffer(frameInfo));
        if (codec.masksSignedSamples && p.pixel_representation === 1 && p.bits_stored < 16 && p.bits_allocated === 16) {
          const words = new Uint16Array(target.buffer, target.byteOffset, target.length / 2);
          const mask = (1 << p.bits_stored) - 1;
          for (let i = 0; i < words.length; i++) words[i] &= mask;
        }
        codec.configure(encoder, p);
        encoder.encode();
        const codestream = encoder.getEncodedBuffer().slice();
        if (codec.Encoder === "JpegLSEncoder" || !usesColourTransform(codestream)) return codestream;
        // A multi-frame file's header says YBR_RCT (or YBR_ICT) once its first frame is written.
        if (!["RGB", "YBR_RCT", "YBR_ICT"].includes(p.photometric_interpretation)) {
          throw new Error(`the ${codec.label} codec applies its RGB colour transform, which does not suit ` +
            `${p.photometric_interpretation} samples`);
        }
        // the irreversible wavelet goes with the irreversible colour transform
        return { data: codestream, photometric_interpretation: p.compression_ratio ? "YBR_ICT" : "YBR_RCT" };
      } finally {
        encoder.delete();
      }
    });
  };
}

/**
 * Instantiates the codecs runtime.json names and registers them with dcmstudio.codecs.
 * A codec that does not load is registered as unavailable, with the reason, so that the viewer
 * and Compress say why instead of failing later. Rejects only if `registry` does.
 *
 * @param {object} pyodide  the worker's Pyodide, with dcmstudio importable
 * @param {URL} siteRoot    the folder holding runtime.json (dist/)
 * @param {object} files    runtime.json's `codecs`: { name: { module, wasm } }, paths in dist/
 * @param {object|Promise<object>} [registry]  what to register with, or a promise of it (the
 *   worker's: dcmstudio.codecs once the later stage has brought numpy), by default the
 *   dcmstudio.codecs module (tests/pyodide/run.mjs collects the functions instead, for the tests
 *   that ask for them). The codecs load meanwhile.
 * @returns {Promise<string[]>} the labels of the codecs that loaded
 */
export async function installCodecs(pyodide, siteRoot, files = {}, registry = null) {
  const codecs = Object.entries(CODECS);
  // settled as { holder } or { error }: a failure waits here, unhandled, until the registry comes
  const loads = codecs.map(([name, codec]) => (files[name]
    ? withTimeout(loadModule(files[name], siteRoot, codec.label), LOAD_TIMEOUT_MS)
    : Promise.reject(new Error("this build does not include it")))
    .then((holder) => ({ holder }), (error) => ({ error })));
  const ownsRegistry = !registry;
  registry = await (registry || pyodide.pyimport("dcmstudio.codecs"));
  const loaded = await Promise.all(codecs.map(async ([, codec], i) => {
    try {
      const { holder, error } = await loads[i];
      if (error) throw error;
      const decode = decoderFor(codec, holder);
      for (const ts of codec.decodes) registry.register_decoder(ts, decode);
      const encode = encoderFor(codec, holder);
      for (const ts of [codec.encodes].flat()) registry.register_encoder(ts, encode);
      return codec.label;
    } catch (error) {
      const reason = `the ${codec.label} codec did not load (${error.message || error})`;
      console.warn(reason);
      for (const ts of codec.decodes) registry.register_unavailable(ts, reason);
      return null;
    }
  }));
  if (ownsRegistry) registry.destroy();
  return loaded.filter(Boolean);
}
