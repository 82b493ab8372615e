//! Per-GPU state, made on first use and kept for the life of the process: the device's primary
//! context (the one PyTorch and the CUDA runtime use, so device pointers pass freely between
//! them), the kernel modules loaded from the embedded fatbins, a cuBLAS handle, and
//! stream-ordered scratch memory.
//!
//! Nothing here touches a CUDA library before [`availability`] has checked that the driver
//! library can be loaded: cudarc panics on a missing library, and iqrs must not.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas;
use cudarc::driver::result::{self, DriverError};
use cudarc::driver::{sys, CudaContext};

use super::kernels;
use crate::error::{IqError, Result};

/// Turns a driver error into an [`IqError`] naming the failed step.
pub(crate) fn driver_err(what: &'static str) -> impl Fn(DriverError) -> IqError {
    move |e| {
        let name = e.error_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|_| format!("{:?}", e.0));
        let text = e.error_string().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        IqError::Cuda { what, msg: format!("{name} ({text})") }
    }
}

/// Turns a cuBLAS error into an [`IqError`] naming the failed step.
pub(crate) fn cublas_err(what: &'static str) -> impl Fn(cublas::result::CublasError) -> IqError {
    move |e| IqError::Cuda { what, msg: format!("{:?}", e.0) }
}

/// Whether a GPU can be used: `Ok(device count)`, or why not. Checked once per process.
pub fn availability() -> Result<usize> {
    static STATE: OnceLock<Result<usize>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            // SAFETY: only tries to dlopen the driver library under its usual names.
            if !unsafe { sys::is_culib_present() } {
                return Err(IqError::CudaUnavailable("the CUDA driver library (libcuda.so) was not found".into()));
            }
            result::init().map_err(|e| IqError::CudaUnavailable(driver_err("cuInit")(e).to_string()))?;
            let n = result::device::get_count().map_err(driver_err("cuDeviceGetCount"))?;
            if n <= 0 {
                return Err(IqError::CudaUnavailable("the driver reports no CUDA device".into()));
            }
            Ok(n as usize)
        })
        .clone()
}

/// A loaded kernel. The handle stays valid as long as its module, which is never unloaded.
#[derive(Clone, Copy)]
pub(crate) struct Function(sys::CUfunction);
// SAFETY: a CUfunction is an immutable handle that the driver lets any thread launch.
unsafe impl Send for Function {}
unsafe impl Sync for Function {}

struct Module(sys::CUmodule);
// SAFETY: as for Function.
unsafe impl Send for Module {}

struct CublasHandle(cublas::sys::cublasHandle_t);
// SAFETY: the handle is only used under the device's mutex, one thread at a time.
unsafe impl Send for CublasHandle {}

/// One GPU.
pub struct Device {
    ctx: Arc<CudaContext>,
    ordinal: usize,
    modules: Mutex<HashMap<&'static str, Module>>,
    functions: Mutex<HashMap<String, Function>>,
    cublas: Mutex<Option<CublasHandle>>,
    /// Programmatic dependent launch is available (compute capability 9.0 or newer).
    pdl: bool,
    /// Compute capability 9.0 exactly: the sm_90a kernels (wgmma) run.
    sm90a: bool,
}

/// The device of an ordinal, made on first use.
pub fn device(ordinal: usize) -> Result<Arc<Device>> {
    static DEVICES: Mutex<Vec<Option<Arc<Device>>>> = Mutex::new(Vec::new());
    let count = availability()?;
    if ordinal >= count {
        return Err(IqError::Invalid(format!("CUDA device {ordinal} does not exist ({count} device(s))")));
    }
    let mut devices = DEVICES.lock().unwrap_or_else(|p| p.into_inner());
    if devices.len() < count {
        devices.resize(count, None);
    }
    if let Some(d) = &devices[ordinal] {
        return Ok(d.clone());
    }
    let ctx = CudaContext::new(ordinal).map_err(driver_err("creating the context"))?;
    let major = ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR).map_err(driver_err("cuDeviceGetAttribute"))?;
    let minor = ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR).map_err(driver_err("cuDeviceGetAttribute"))?;
    let (pdl, sm90a) = (major >= 9, (major, minor) == (9, 0));
    let d = Arc::new(Device { ctx, ordinal, modules: Mutex::default(), functions: Mutex::default(), cublas: Mutex::new(None), pdl, sm90a });
    d.keep_scratch_cached()?;
    devices[ordinal] = Some(d.clone());
    Ok(d)
}

/// A developer's override of an embedded module: `$IQRS_LAB_MODULES/<module>.fatbin` (or
/// `.cubin`) when that variable is set and the file exists, so that variants of one kernel file
/// can be timed through the library without rebuilding it. Unset in normal use.
fn lab_fatbin(module: &str) -> Option<Vec<u8>> {
    let dir = std::path::PathBuf::from(std::env::var_os("IQRS_LAB_MODULES")?);
    ["fatbin", "cubin"].iter().find_map(|ext| std::fs::read(dir.join(format!("{module}.{ext}"))).ok())
}

/// Facts about a GPU, for `iqrs.cuda.device_info()`.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub total_memory: usize,
    pub multiprocessors: i32,
    pub l2_cache_bytes: i32,
    pub driver_version: i32,
    /// `"sm_90"` when the library holds a cubin for the device, else `"ptx (JIT from compute_90)"`.
    pub kernels: String,
}

impl Device {
    /// Makes the context current on the calling thread (every entry point does this first).
    pub(crate) fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(driver_err("making the context current"))
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// Whether `module` can run here: present in this build, and for the `*_sm90a` modules a
    /// device of compute capability 9.0.
    pub(crate) fn runs(&self, module: &str) -> bool {
        kernels::fatbin(module).is_some() && (self.sm90a || !module.ends_with("_sm90a"))
    }

    /// Streaming multiprocessors of the device.
    pub(crate) fn multiprocessors(&self) -> Result<usize> {
        let n = self.ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).map_err(driver_err("cuDeviceGetAttribute"))?;
        Ok(n.max(1) as usize)
    }

    /// Facts about this GPU.
    pub fn info(&self) -> Result<DeviceInfo> {
        self.bind()?;
        let attr = |a| self.ctx.attribute(a).map_err(driver_err("cuDeviceGetAttribute"));
        use sys::CUdevice_attribute::*;
        let cc = (attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?, attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?);
        let mut driver_version = 0;
        // SAFETY: writes one int.
        unsafe { sys::cuDriverGetVersion(&mut driver_version) }.result().map_err(driver_err("cuDriverGetVersion"))?;
        let sm = (cc.0 * 10 + cc.1) as u32;
        let newest = kernels::ARCHS.iter().copied().max().unwrap_or(0);
        let kernels = if kernels::ARCHS.contains(&sm) {
            format!("sm_{sm}")
        } else if sm > newest {
            format!("ptx (JIT from compute_{})", if newest >= 90 { 90 } else { 80 })
        } else {
            "none (device too old: sm_80 or newer needed)".into()
        };
        Ok(DeviceInfo {
            ordinal: self.ordinal,
            name: self.ctx.name().map_err(driver_err("cuDeviceGetName"))?,
            compute_capability: cc,
            total_memory: self.ctx.total_mem().map_err(driver_err("cuDeviceTotalMem"))?,
            multiprocessors: attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
            l2_cache_bytes: attr(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)?,
            driver_version,
            kernels,
        })
    }

    /// A kernel of a module, loading the module from its embedded fatbin on first use.
    pub(crate) fn function(&self, module: &'static str, name: &str) -> Result<Function> {
        if let Some(f) = self.functions.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(*f);
        }
        let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        if !modules.contains_key(module) {
            let lab = lab_fatbin(module);
            let bin = match &lab {
                Some(b) => b.as_slice(),
                None => kernels::fatbin(module).ok_or_else(|| IqError::Invalid(format!("no CUDA module {module:?} in this build")))?,
            };
            // cuModuleLoadData wants an aligned image; include_bytes! data is only byte-aligned.
            let mut image = vec![0u64; bin.len().div_ceil(8)];
            // SAFETY: `image` has at least `bin.len()` bytes.
            unsafe { std::ptr::copy_nonoverlapping(bin.as_ptr(), image.as_mut_ptr() as *mut u8, bin.len()) };
            self.bind()?;
            // SAFETY: the image is a complete fatbin produced by nvcc; the driver copies it.
            let m = unsafe { result::module::load_data(image.as_ptr() as *const c_void) }.map_err(|e| {
                let err = driver_err("loading the kernels")(e);
                IqError::CudaUnavailable(format!("{err} — this GPU may be older than sm_80, or the driver older than the PTX (CUDA {}.{})", kernels::NVCC_VERSION.0, kernels::NVCC_VERSION.1))
            })?;
            modules.insert(module, Module(m));
        }
        let cname = CString::new(name).map_err(|_| IqError::Invalid(format!("bad kernel name {name:?}")))?;
        // SAFETY: the module is loaded and never unloaded.
        let f = unsafe { result::module::get_function(modules[module].0, cname) }.map_err(|_| IqError::Invalid(format!("kernel {name} is not in module {module}")))?;
        let f = Function(f);
        self.functions.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), f);
        Ok(f)
    }

    /// Launches `f` on `stream`. `args` holds pointers to the kernel's arguments, in order, of
    /// exactly the types its C signature declares.
    ///
    /// # Safety
    /// Every pointer argument must be valid for what the kernel does with it until the work
    /// queued on `stream` completes.
    pub(crate) unsafe fn launch(&self, f: Function, grid: (u32, u32, u32), block: (u32, u32, u32), stream: sys::CUstream, args: &mut [*mut c_void]) -> Result<()> {
        self.launch_shared(f, grid, block, 0, stream, args)
    }

    /// Launches `f` on `stream` as [`Device::launch`] does, with `shared` bytes of dynamic shared
    /// memory (beyond the default 48 KB the function is allowed that much first).
    ///
    /// # Safety
    /// As for [`Device::launch`].
    pub(crate) unsafe fn launch_shared(&self, f: Function, grid: (u32, u32, u32), block: (u32, u32, u32), shared: u32, stream: sys::CUstream, args: &mut [*mut c_void]) -> Result<()> {
        if grid.0 == 0 {
            return Ok(());
        }
        if shared > 48 * 1024 {
            let attr = sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
            sys::cuFuncSetAttribute(f.0, attr, shared as i32).result().map_err(driver_err("allowing a kernel its shared memory"))?;
        }
        result::launch_kernel(f.0, grid, block, shared, stream, args).map_err(driver_err("launching a kernel"))
    }

    /// Launches `f` on `stream` as [`Device::launch`] does, but as a programmatic dependent of
    /// the kernel queued before it (compute capability 9.0 and newer; elsewhere a plain launch):
    /// `f` may be scheduled once that kernel has called `pdl_launch_dependents` (cuda/common.cuh),
    /// and must call `pdl_wait` before it touches memory that kernel writes or reads.
    ///
    /// # Safety
    /// As for [`Device::launch`], and `f` must wait as said.
    pub(crate) unsafe fn launch_dependent(&self, f: Function, grid: (u32, u32, u32), block: (u32, u32, u32), stream: sys::CUstream, args: &mut [*mut c_void]) -> Result<()> {
        if !self.pdl || grid.0 == 0 {
            return self.launch(f, grid, block, stream, args);
        }
        let mut attr: sys::CUlaunchAttribute = std::mem::zeroed();
        attr.id = sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
        attr.value.programmaticStreamSerializationAllowed = 1;
        let config = sys::CUlaunchConfig {
            gridDimX: grid.0,
            gridDimY: grid.1,
            gridDimZ: grid.2,
            blockDimX: block.0,
            blockDimY: block.1,
            blockDimZ: block.2,
            sharedMemBytes: 0,
            hStream: stream,
            attrs: &mut attr,
            numAttrs: 1,
        };
        sys::cuLaunchKernelEx(&config, f.0, args.as_mut_ptr(), std::ptr::null_mut()).result().map_err(driver_err("launching a kernel"))
    }

    /// Checks that `[ptr, ptr + bytes)` lies inside one allocation on this device: turns the
    /// most likely misuses of raw pointers (a CPU pointer, another GPU, a short buffer) into errors.
    pub(crate) fn check_range(&self, what: &'static str, ptr: u64, bytes: usize) -> Result<()> {
        let (mut ordinal, mut start, mut size) = (-1i32, 0u64, 0usize);
        let mut attrs = [
            sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
            sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_RANGE_START_ADDR,
            sys::CUpointer_attribute::CU_POINTER_ATTRIBUTE_RANGE_SIZE,
        ];
        let mut data = [&mut ordinal as *mut i32 as *mut c_void, &mut start as *mut u64 as *mut c_void, &mut size as *mut usize as *mut c_void];
        // SAFETY: each attribute is written as the type its data pointer points to. For an
        // address the driver does not know, the call succeeds and leaves size 0 / ordinal < 0.
        unsafe { sys::cuPointerGetAttributes(3, attrs.as_mut_ptr(), data.as_mut_ptr(), ptr) }.result().map_err(driver_err("cuPointerGetAttributes"))?;
        if size == 0 || ordinal < 0 {
            return Err(IqError::Invalid(format!("{what}: 0x{ptr:x} is not CUDA device memory")));
        }
        if ordinal as usize != self.ordinal {
            return Err(IqError::Invalid(format!("{what} is on CUDA device {ordinal}, the weights on device {}", self.ordinal)));
        }
        if ptr + bytes as u64 > start + size as u64 {
            return Err(IqError::Invalid(format!("{what}: needs {bytes} bytes at 0x{ptr:x} but its allocation ends {} bytes after it", start + size as u64 - ptr)));
        }
        Ok(())
    }

    /// Lets the default memory pool keep freed scratch memory, so stream-ordered allocations of
    /// the same sizes cost nothing after the first call (the default releases it at every sync).
    fn keep_scratch_cached(&self) -> Result<()> {
        if !self.ctx.has_async_alloc() {
            return Ok(());
        }
        // SAFETY: the device handle comes from the context; the attribute is a u64.
        unsafe {
            let pool = result::device::get_default_mem_pool(self.ctx.cu_device()).map_err(driver_err("cuDeviceGetDefaultMemPool"))?;
            let mut threshold = u64::MAX;
            result::mem_pool::set_attribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &mut threshold as *mut u64 as *mut c_void)
                .map_err(driver_err("cuMemPoolSetAttribute"))
        }
    }

    /// `bytes` of device memory for work queued on `stream`, freed (stream-ordered) on drop.
    pub(crate) fn scratch(&self, bytes: usize, stream: sys::CUstream) -> Result<Scratch> {
        let bytes = bytes.max(1);
        let ptr = if self.ctx.has_async_alloc() {
            // SAFETY: a plain allocation; freed in Scratch::drop on the same stream.
            unsafe { result::malloc_async(stream, bytes) }
        } else {
            // SAFETY: as above; freed after a synchronisation of the stream.
            unsafe { result::malloc_sync(bytes) }
        }
        .map_err(|e| match e.0 {
            sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => IqError::Cuda { what: "allocating scratch memory", msg: format!("out of GPU memory ({bytes} bytes)") },
            _ => driver_err("allocating scratch memory")(e),
        })?;
        Ok(Scratch { ptr, stream, pooled: self.ctx.has_async_alloc() })
    }

    /// Runs `f` with this device's cuBLAS handle bound to `stream` (made on first use).
    pub(crate) fn with_cublas<R>(&self, stream: sys::CUstream, f: impl FnOnce(cublas::sys::cublasHandle_t) -> Result<R>) -> Result<R> {
        let mut guard = self.cublas.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            // SAFETY: only tries to dlopen cuBLAS under its usual names.
            if !unsafe { cublas::sys::is_culib_present() } {
                return Err(IqError::CudaUnavailable("cuBLAS (libcublas.so.13 or .12) was not found; import torch first, or add the CUDA libraries to LD_LIBRARY_PATH".into()));
            }
            self.bind()?;
            *guard = Some(CublasHandle(cublas::result::create_handle().map_err(cublas_err("cublasCreate"))?));
        }
        let handle = guard.as_ref().map(|h| h.0).expect("made above");
        // SAFETY: the handle is valid; the stream belongs to this device's context.
        unsafe { cublas::result::set_stream(handle, stream as cublas::sys::cudaStream_t) }.map_err(cublas_err("cublasSetStream"))?;
        f(handle)
    }
}

/// Stream-ordered scratch memory (see [`Device::scratch`]).
pub(crate) struct Scratch {
    ptr: sys::CUdeviceptr,
    stream: sys::CUstream,
    pooled: bool,
}

impl Scratch {
    pub(crate) fn ptr(&self) -> u64 {
        self.ptr
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: the memory was allocated by Device::scratch and is freed once; work queued on
        // the stream before this point may still use it, which both frees wait for.
        unsafe {
            if self.pooled {
                let _ = result::free_async(self.ptr, self.stream);
            } else {
                let _ = result::stream::synchronize(self.stream);
                let _ = result::free_sync(self.ptr);
            }
        }
    }
}
