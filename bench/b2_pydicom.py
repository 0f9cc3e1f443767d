"""A simple pydicom writer in CPython, the Job B peer the shared peers lack (nibabel read, one Dataset per slice, save_as).
usage: b2_pydicom.py IN.nii OUT_DIR"""
import os, sys, time
t0 = time.perf_counter()
import numpy as np, nibabel as nib, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, CTImageStorage, generate_uid
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
img = nib.load(src)
vol = np.asanyarray(img.dataobj).T  # z, y, x
aff = np.diag([-1, -1, 1, 1]) @ img.affine
sp = np.linalg.norm(aff[:3, :3], axis=0); d = aff[:3, :3] / sp
study, series, frame = generate_uid(), generate_uid(), generate_uid()
for k in range(vol.shape[0]):
    fm = FileMetaDataset(); sop = generate_uid()
    fm.MediaStorageSOPClassUID = CTImageStorage; fm.MediaStorageSOPInstanceUID = sop
    fm.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset(); ds.file_meta = fm
    ds.SOPClassUID = CTImageStorage; ds.SOPInstanceUID = sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.Modality = "CT"; ds.PatientName = "Anonymous"; ds.PatientID = "ANON"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]; ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [float(v) for v in aff[:3, 3] + k * sp[2] * d[:, 2]]
    ds.ImageOrientationPatient = [float(v) for v in list(d[:, 0]) + list(d[:, 1])]
    ds.PixelSpacing = [float(sp[1]), float(sp[0])]; ds.SliceThickness = float(sp[2])
    ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = vol.shape[1], vol.shape[2]
    ds.BitsAllocated = 16; ds.BitsStored = 16; ds.HighBit = 15; ds.PixelRepresentation = 1
    ds.RescaleIntercept = 0; ds.RescaleSlope = 1
    ds.PixelData = np.ascontiguousarray(vol[k]).tobytes()
    ds.save_as(os.path.join(dst, f"IM{k + 1:04d}.dcm"), enforce_file_format=True)
print(f"B2 total={time.perf_counter() - t0:.3f}s")
