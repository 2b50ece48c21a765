"""Keyframe links: pairs of keyframes that see the same points, with their pixel correspondences.

A link ``(a, b, pa, pb)`` says pixel ``pb[k]`` of keyframe ``b`` shows the same direction as
``pa[k]`` of keyframe ``a``. Sequential links come from shared KLT track ids; loop links from ORB
matches checked by a rotation-only RANSAC.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pano360.project.rotation import best_rotation, matrix_to_euler, rotation_angle_deg
from pano360.slam.frontend import Keyframe
from pano360.slam.geometry import pixels_to_rays, ransac_rotation, unit_rays

__all__ = ["Link", "track_links", "loop_links", "chain_rotations"]


@dataclass(frozen=True)
class Link:
    """Correspondences ``pa, pb (k, 2)`` between keyframes ``a < b``; ``loop`` marks a loop closure;
    ``wa (k, 3)``, when known, how precisely each ``pa`` is placed (:mod:`pano360.slam.precision`)."""

    a: int
    b: int
    pa: np.ndarray
    pb: np.ndarray
    loop: bool = False
    wa: np.ndarray | None = None


def track_links(keyframes: list[Keyframe], span: int = 3, min_points: int = 8, max_points: int = 80) -> list[Link]:
    """Links from each keyframe to the next ``span`` keyframes of its segment through shared tracks."""
    links = []
    for a, ka in enumerate(keyframes):
        for b in range(a + 1, min(a + span + 1, len(keyframes))):
            kb = keyframes[b]
            if kb.segment != ka.segment:
                break
            common, ia, ib = np.intersect1d(ka.ids, kb.ids, assume_unique=True, return_indices=True)
            if len(common) < min_points:
                continue
            sel = np.linspace(0, len(common) - 1, min(len(common), max_points)).round().astype(int)
            wa = ka.info[ia[sel]] if len(ka.info) == len(ka.pts) else None
            links.append(Link(a, b, ka.pts[ia[sel]].astype(np.float64), kb.pts[ib[sel]].astype(np.float64), wa=wa))
    return links


def chain_rotations(n_kf: int, links: list[Link], width: int, height: int, focal: float, segments: np.ndarray) -> np.ndarray:
    """Keyframe rotations ``(n_kf, 3, 3)`` chained from the shortest link into each keyframe.

    A keyframe with no link from an earlier one (a new segment) keeps its predecessor's rotation.
    """
    R = np.repeat(np.eye(3)[None], n_kf, axis=0)
    into: dict[int, Link] = {}
    for link in links:
        if not link.loop and (link.b not in into or link.a > into[link.b].a):
            into[link.b] = link
    for b in range(1, n_kf):
        link = into.get(b)
        if link is None:
            R[b] = R[b - 1]
            continue
        rel = best_rotation(pixels_to_rays(link.pa, width, height, focal), pixels_to_rays(link.pb, width, height, focal))
        R[b] = R[link.a] @ rel
    return R


def _rotation_ransac(pa: np.ndarray, pb: np.ndarray, width: int, height: int, focal: float, thresh_px: float,
                     generator: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rotation-only RANSAC on pixel pairs; returns ``(R, inliers)``."""
    return ransac_rotation(unit_rays(pa, width, height, focal), unit_rays(pb, width, height, focal), thresh_px / focal, generator)


def loop_links(keyframes: list[Keyframe], R: np.ndarray, width: int, height: int, focal: float, hfov_deg: float,
               min_gap: int = 6, min_inliers: int = 25, max_points: int = 80) -> list[Link]:
    """Loop-closure links: ORB matches between keyframes whose current rotations are close.

    Candidates are keyframes at least ``min_gap`` apart whose optical axes are within 0.6 of the
    FOV; keyframes opening a new segment (tracking broke) are tried against every earlier one.
    Matches (ratio test) are checked by a rotation-only RANSAC at 3 px.
    """
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    gen = np.random.default_rng(0)
    links = []
    segment = [k.segment for k in keyframes]
    anchored = {segment[0]} if keyframes else set()  # segments tied to an earlier one by a link found here
    for b in range(len(keyframes)):
        kb = keyframes[b]
        if kb.orb_desc is None or len(kb.orb_pts) < min_inliers:
            continue
        restart = b > 0 and keyframes[b - 1].segment != kb.segment
        if restart:  # where it is relative to before is unknown: the last keyframes before the break, then a spread of all earlier ones
            last = list(range(b - 1, max(b - 9, -1), -1))
            spread = np.unique(np.linspace(0, max(b - 9, 0), min(32, max(b - 8, 0))).round().astype(int)).tolist() if b > 8 else []
            cands = last + [a for a in spread if a not in last]
        else:  # the closest few in angle are enough; more only cost time
            # One row of angles at a time: the whole table would grow with the square of the clip's length.
            ang = rotation_angle_deg(R[: max(b - min_gap + 1, 0)], R[b][None])
            near = sorted(np.flatnonzero(ang < 0.6 * hfov_deg).tolist(), key=lambda a: ang[a])
            cands = near[:3]
            if kb.segment not in anchored:
                # A segment its restart could not tie back (the first frames after a flash were too
                # dark to match) keeps trying the earlier segments' nearest keyframes, however recent.
                before = np.flatnonzero(np.asarray(segment[:b]) < kb.segment)
                ang_before = rotation_angle_deg(R[before], R[b][None])
                cands += [int(a) for a in before[np.argsort(ang_before)] if a not in cands][:3]
        for a in cands:
            ka = keyframes[a]
            if ka.orb_desc is None or len(ka.orb_pts) < min_inliers:
                continue
            pairs = matcher.knnMatch(kb.orb_desc, ka.orb_desc, k=2)
            good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.75 * m[1].distance]
            if len(good) < min_inliers:
                continue
            pb = kb.orb_pts[[m.queryIdx for m in good]].astype(np.float64)
            pa = ka.orb_pts[[m.trainIdx for m in good]].astype(np.float64)
            rel, inl = _rotation_ransac(pa, pb, width, height, focal, 2.0, gen)
            if inl.sum() < min_inliers:
                continue
            if not restart and rotation_angle_deg(rel, R[a].T @ R[b]) > max(1.0, 0.03 * hfov_deg):
                continue  # it disagrees with the tracked path: a repeated texture or a moving object
            if restart and (abs(float(matrix_to_euler(rel)[2])) > 30.0 or inl.sum() < max(40, 0.25 * len(good))):
                continue  # a hand-held phone does not turn upside down across a cut: a symmetric false match
            idx = np.flatnonzero(inl)
            idx = idx[np.linspace(0, len(idx) - 1, min(len(idx), max_points)).round().astype(int)]
            links.append(Link(a, b, pa[idx], pb[idx], loop=True))
            if segment[a] < kb.segment and segment[a] in anchored:
                anchored.add(kb.segment)
            if restart:
                break
    return links
