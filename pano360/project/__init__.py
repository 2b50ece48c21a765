"""Spherical geometry: the ERP mapping, rotations, the pinhole camera and remap tables."""

from pano360.project.camera import focal_from_hfov, hfov_from_focal, intrinsics, pixel_rays, project_to_pixels
from pano360.project.erp import dirs_to_lonlat, dirs_to_uv, erp_pixel_dirs, lonlat_to_dirs, lonlat_to_uv, uv_to_dirs, uv_to_lonlat
from pano360.project.cubemap import (
    FACES,
    cube_to_dice,
    cube_to_erp,
    cube_to_horizon,
    dice_to_cube,
    erp_to_cube,
    face_rotations,
    horizon_to_cube,
)
from pano360.project.footprint import (
    FootprintRegion,
    feather_alpha,
    fixed_point_maps,
    footprint_box,
    paste_region,
    persp_footprint_region,
    remap_region,
    take_region,
)
from pano360.project.remap import (
    ErpTable,
    Footprint,
    dirs_to_uv_fast,
    erp_to_persp,
    erp_to_persp_map,
    erp_to_persp_table,
    persp_footprint_map,
    persp_to_erp,
    rotate_erp,
    rotate_erp_map,
    rotate_erp_table,
    sample_erp,
    sample_erp_table,
)
from pano360.project.rotation import (
    euler_to_matrix,
    interpolate_rotations,
    matrix_to_euler,
    matrix_to_quat,
    quat_to_matrix,
    rotation_angle_deg,
    slerp,
    smooth_rotations,
)
from pano360.project.torch_remap import (
    erp_to_persp_torch,
    pad_erp_torch,
    persp_to_erp_torch,
    rotate_erp_torch,
    sample_erp_torch,
)

__all__ = [
    "focal_from_hfov", "hfov_from_focal", "intrinsics", "pixel_rays", "project_to_pixels",
    "dirs_to_lonlat", "dirs_to_uv", "erp_pixel_dirs", "lonlat_to_dirs", "lonlat_to_uv", "uv_to_dirs", "uv_to_lonlat",
    "FootprintRegion", "feather_alpha", "fixed_point_maps", "footprint_box", "paste_region", "persp_footprint_region",
    "remap_region", "take_region",
    "Footprint", "dirs_to_uv_fast", "erp_to_persp", "erp_to_persp_map", "persp_footprint_map", "persp_to_erp",
    "rotate_erp", "rotate_erp_map", "sample_erp",
    "ErpTable", "erp_to_persp_table", "rotate_erp_table", "sample_erp_table",
    "FACES", "cube_to_dice", "cube_to_erp", "cube_to_horizon", "dice_to_cube", "erp_to_cube", "face_rotations",
    "horizon_to_cube",
    "erp_to_persp_torch", "pad_erp_torch", "persp_to_erp_torch", "rotate_erp_torch", "sample_erp_torch",
    "euler_to_matrix", "interpolate_rotations", "matrix_to_euler", "matrix_to_quat", "quat_to_matrix",
    "rotation_angle_deg", "slerp", "smooth_rotations",
]
