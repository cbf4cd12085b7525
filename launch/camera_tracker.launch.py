"""A camera driver plus the tracker node on its images (ROS 2 Humble or newer).

    ros2 launch siam_tracker_ros camera_tracker.launch.py                       # v4l2_camera, /dev/video0
    ros2 launch siam_tracker_ros camera_tracker.launch.py camera:=usb_cam video_device:=/dev/video2
    ros2 launch siam_tracker_ros camera_tracker.launch.py camera:=none image:=/my_robot/front/image_raw
    ros2 launch siam_tracker_ros camera_tracker.launch.py compressed:=true      # over a slow link

camera: v4l2_camera (package ros-<distro>-v4l2-camera), usb_cam (ros-<distro>-usb-cam),
or none (a camera already running: give its topic with image:=). The driver runs in
the namespace `camera_name` and publishes `<camera_name>/image_raw`; the tracker's
`image` input is remapped onto it. compressed:=true makes the tracker subscribe
`<image>/compressed` (the driver's image_transport compressed plugin must be
installed: ros-<distro>-image-transport-plugins). Other tracker arguments
(params_file, model, engine, device, num_threads, rviz) are passed to tracker.launch.py.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "siam_tracker_ros"
DRIVERS = ("v4l2_camera", "usb_cam", "none")
PASSED_ON = ("params_file", "model", "engine", "device", "num_threads", "namespace", "rviz", "lifecycle")


def _camera_and_tracker(context, *args, **kwargs):
    def value(name):
        return LaunchConfiguration(name).perform(context).strip()
    driver = value("camera")
    if driver not in DRIVERS:
        raise RuntimeError(f"camera:={driver}: expected one of {', '.join(DRIVERS)}")
    ns = value("camera_name").strip("/") or "camera"
    width, height, fps = int(value("width")), int(value("height")), float(value("fps"))
    actions = []
    if driver == "v4l2_camera":
        actions.append(Node(
            package="v4l2_camera", executable="v4l2_camera_node", name="v4l2_camera", namespace=ns,
            output="screen",
            parameters=[{"video_device": value("video_device"), "image_size": [width, height],
                         "time_per_frame": [1, max(1, int(round(fps)))], "output_encoding": "rgb8",
                         "camera_frame_id": value("frame_id")}]))
    elif driver == "usb_cam":
        actions.append(Node(
            package="usb_cam", executable="usb_cam_node_exe", name="usb_cam", namespace=ns, output="screen",
            parameters=[{"video_device": value("video_device"), "image_width": width, "image_height": height,
                         "framerate": fps, "pixel_format": value("pixel_format") or "yuyv2rgb",
                         "frame_id": value("frame_id")}]))
    image = value("image") or f"/{ns}/image_raw"
    tracker_args = {"image": image}
    if value("compressed").lower() in ("true", "1", "yes"):
        tracker_args["input"] = "compressed"
    for name in PASSED_ON:
        text = value(name)
        if text:
            tracker_args[name] = text
    launch_dir = os.path.join(get_package_share_directory(PACKAGE), "launch")
    actions.append(IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(launch_dir, "tracker.launch.py")),
        launch_arguments=list(tracker_args.items())))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="v4l2_camera",
                              description="Camera driver: " + " | ".join(DRIVERS)),
        DeclareLaunchArgument("camera_name", default_value="camera",
                              description="Namespace of the driver (it publishes <camera_name>/image_raw)."),
        DeclareLaunchArgument("video_device", default_value="/dev/video0"),
        DeclareLaunchArgument("width", default_value="640"),
        DeclareLaunchArgument("height", default_value="480"),
        DeclareLaunchArgument("fps", default_value="30"),
        DeclareLaunchArgument("pixel_format", default_value="",
                              description="usb_cam pixel_format (default yuyv2rgb; mjpeg2rgb for MJPEG cameras)."),
        DeclareLaunchArgument("frame_id", default_value="camera"),
        DeclareLaunchArgument("image", default_value="",
                              description="The tracker's image topic (default: /<camera_name>/image_raw)."),
        DeclareLaunchArgument("compressed", default_value="false",
                              description="Track on <image>/compressed (sensor_msgs/CompressedImage)."),
        DeclareLaunchArgument("params_file", default_value="",
                              description="Tracker params file (default: the package's)."),
        DeclareLaunchArgument("model", default_value=""),
        DeclareLaunchArgument("engine", default_value=""),
        DeclareLaunchArgument("device", default_value=""),
        DeclareLaunchArgument("num_threads", default_value=""),
        DeclareLaunchArgument("namespace", default_value="", description="Tracker node namespace."),
        DeclareLaunchArgument("rviz", default_value="", description="true: also start rviz2 (config/tracker.rviz)."),
        DeclareLaunchArgument("lifecycle", default_value="",
                              description="true: the managed lifecycle node (autostarted)."),
        OpaqueFunction(function=_camera_and_tracker),
    ])
